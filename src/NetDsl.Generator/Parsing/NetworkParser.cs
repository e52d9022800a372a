using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Model;

namespace NetDsl.Generator.Parsing;

/// <summary>
/// Reads a [Network] class into a <see cref="NetworkSpec"/>. This is the only place that touches symbols,
/// syntax and operations. It never throws on malformed code: what it cannot read becomes a diagnostic.
/// </summary>
internal sealed class NetworkParser
{
    private const string LayerBaseName = "NetDsl.Layer";
    private const string TensorName = "NetDsl.Tensor";
    private const string ShapeAttributeName = "NetDsl.ShapeAttribute";

    private readonly INamedTypeSymbol _type;
    private readonly Compilation _compilation;
    private readonly CancellationToken _ct;
    private readonly List<Location> _spans = new();
    private readonly List<DiagnosticInfo> _diagnostics = new();
    private readonly Dictionary<SyntaxTree, SemanticModel> _models = new();
    private readonly HashSet<string> _layerNames = new(StringComparer.Ordinal);

    private NetworkParser(INamedTypeSymbol type, Compilation compilation, CancellationToken ct)
    {
        _type = type;
        _compilation = compilation;
        _ct = ct;
    }

    /// <summary>Parses <paramref name="type"/>; the result's span table maps span ids back to source locations.</summary>
    public static ParseResult Parse(INamedTypeSymbol type, Compilation compilation, CancellationToken ct)
    {
        var parser = new NetworkParser(type, compilation, ct);
        try
        {
            return parser.Run();
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            // A parser bug must not take the build down: report it as NDSL0900 on the class.
            parser._diagnostics.Add(DiagnosticInfo.Create(Descriptors.InternalError.Id, 0, type.Name, ex.GetType().Name + ": " + ex.Message));
            return parser.Result(EquatableArray<LayerSpec>.Empty, EquatableArray<InputSpec>.Empty, EquatableArray<StatementSpec>.Empty, canEmit: false);
        }
    }

    /// <summary>Whether a tree was written by this generator (the analyzer sees generated trees too).</summary>
    public static bool IsGenerated(SyntaxTree tree)
        => tree.FilePath.EndsWith(".g.cs", StringComparison.OrdinalIgnoreCase)
           && tree.FilePath.IndexOf("NetDsl.Generator", StringComparison.Ordinal) >= 0;

    private ParseResult Run()
    {
        var declarations = _type.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax(_ct))
            .OfType<TypeDeclarationSyntax>()
            .Where(d => !IsGenerated(d.SyntaxTree))
            .ToList();
        _spans.Add(declarations.Count > 0 ? declarations[0].Identifier.GetLocation() : Location.None);

        bool canEmit = CheckClass(declarations);
        string elementType = ReadPrecision();

        var layers = ReadLayers();
        _ct.ThrowIfCancellationRequested();

        var forwards = _type.GetMembers("Forward").OfType<IMethodSymbol>()
            .Where(m => m.DeclaringSyntaxReferences.Any(r => !IsGenerated(r.SyntaxTree)))
            .ToList();
        var inputs = new List<InputSpec>();
        var body = new List<StatementSpec>();
        if (forwards.Count == 0)
        {
            Report(Descriptors.MissingForward, 0, _type.Name);
        }
        else
        {
            for (int i = 1; i < forwards.Count; i++)
                Report(Descriptors.DuplicateForward, SpanOf(forwards[i]), _type.Name);
            var forward = forwards[0];
            ReadInputs(forward, inputs);
            ReadBody(forward, body);
        }

        return Result(layers.ToEquatableArray(), inputs.ToEquatableArray(), body.ToEquatableArray(), canEmit);
    }

    private ParseResult Result(EquatableArray<LayerSpec> layers, EquatableArray<InputSpec> inputs, EquatableArray<StatementSpec> body, bool canEmit)
    {
        string ns = _type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : "";
        string access = _type.DeclaredAccessibility == Accessibility.Public ? "public" : "internal";
        int bucketBytes = ReadGradientBucketBytes();
        var spec = new NetworkSpec(ns, _type.Name, access, ReadPrecision(), layers, inputs, body, _diagnostics.ToEquatableArray(), canEmit && bucketBytes > 0, bucketBytes);
        return new ParseResult(spec, _spans.ToArray());
    }

    // ---- class ---------------------------------------------------------------------------------------------

    private bool CheckClass(List<TypeDeclarationSyntax> declarations)
    {
        bool canEmit = true;
        if (declarations.Any(d => d is not ClassDeclarationSyntax))
        {
            Report(Descriptors.UnsupportedClass, 0, _type.Name, "only classes can be networks (not records or structs)");
            return false;
        }
        foreach (var d in declarations)
        {
            if (!d.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                Report(Descriptors.NotPartial, Span(d.Identifier.GetLocation()), _type.Name);
                canEmit = false;
            }
        }
        if (_type.ContainingType is not null)
        {
            Report(Descriptors.UnsupportedClass, 0, _type.Name, "nested classes are not supported; declare it directly in a namespace");
            canEmit = false;
        }
        if (_type.TypeParameters.Length > 0)
        {
            Report(Descriptors.UnsupportedClass, 0, _type.Name, "generic classes are not supported; every shape must be fixed at compile time");
            canEmit = false;
        }
        if (_type.IsStatic || _type.IsAbstract)
        {
            Report(Descriptors.UnsupportedClass, 0, _type.Name, "a network is instantiated, so it cannot be static or abstract");
            canEmit = false;
        }
        foreach (var d in declarations)
        {
            if (d.BaseList is null) continue;
            var model = Model(d.SyntaxTree);
            foreach (var b in d.BaseList.Types)
            {
                var t = model.GetTypeInfo(b.Type, _ct).Type;
                if (t is { TypeKind: TypeKind.Class })
                {
                    Report(Descriptors.UnsupportedClass, Span(b.GetLocation()), _type.Name,
                        $"it derives from '{t.ToDisplayString()}', but NetDsl supplies the base class of a network; remove the base class (interfaces are fine)");
                    canEmit = false;
                }
            }
        }
        return canEmit;
    }

    private string ReadPrecision()
    {
        foreach (var a in _type.GetAttributes())
        {
            if (a.AttributeClass?.ToDisplayString() != "NetDsl.NetworkAttribute") continue;
            foreach (var named in a.NamedArguments)
                if (named.Key == "Precision" && named.Value.Value is int p && p == 1)
                    return "double";
        }
        return "float";
    }

    /// <summary>[Network(GradientBucketBytes = n)]: the bucket cap of the data-parallel plan; must be positive.</summary>
    private int ReadGradientBucketBytes()
    {
        foreach (var a in _type.GetAttributes())
        {
            if (a.AttributeClass?.ToDisplayString() != "NetDsl.NetworkAttribute") continue;
            foreach (var named in a.NamedArguments)
            {
                if (named.Key != "GradientBucketBytes") continue;
                if (named.Value.Value is int n && n > 0) return n;
                Report(Descriptors.InvalidArgument, 0, "Network", "GradientBucketBytes", named.Value.Value is int bad ? Invariant.Format(bad) : "not an int", "a positive number of bytes (default 1 MiB = 1048576)");
                return 0;
            }
        }
        return NetworkSpec.DefaultGradientBucketBytes;
    }

    // ---- layers --------------------------------------------------------------------------------------------

    private List<LayerSpec> ReadLayers()
    {
        var layers = new List<LayerSpec>();
        foreach (var member in _type.GetMembers())
        {
            if (member is not IFieldSymbol field || field.IsImplicitlyDeclared) continue;
            if (!DerivesFrom(field.Type, LayerBaseName)) continue;
            var syntax = field.DeclaringSyntaxReferences.Select(r => r.GetSyntax(_ct)).OfType<VariableDeclaratorSyntax>().FirstOrDefault();
            if (syntax is null || IsGenerated(syntax.SyntaxTree)) continue;
            int span = Span(syntax.Identifier.GetLocation());
            _layerNames.Add(field.Name);
            string kind = field.Type.Name;
            if (!OpCatalog.Layers.Contains(kind))
            {
                Report(Descriptors.UnsupportedExpression, span, field.Type.ToDisplayString(), "this version of the NetDsl generator knows the layers " + string.Join(", ", OpCatalog.Layers));
                continue;
            }
            if (syntax.Initializer is null)
            {
                Report(Descriptors.LayerWithoutInitializer, span, field.Name);
                continue;
            }
            var op = Unwrap(Model(syntax.SyntaxTree).GetOperation(syntax.Initializer.Value, _ct));
            if (op is not IObjectCreationOperation creation || creation.Constructor is null)
            {
                Report(Descriptors.LayerWithoutInitializer, Span(syntax.Initializer.Value.GetLocation()), field.Name);
                continue;
            }
            var args = new List<ArgSpec>();
            bool ok = true;
            foreach (var arg in creation.Arguments)
            {
                if (arg.Parameter is null) { ok = false; continue; }
                int argSpan = arg.ArgumentKind == ArgumentKind.DefaultValue ? span : Span(arg.Syntax.GetLocation());
                var constant = arg.Value.ConstantValue;
                if (!constant.HasValue || !TryNumber(constant.Value, out double value, out bool isNull))
                {
                    Report(Descriptors.NonConstantArgument, argSpan, arg.Parameter.Name, field.Name, Shorten(arg.Value.Syntax.ToString()));
                    ok = false;
                    continue;
                }
                args.Add(new ArgSpec(arg.Parameter.Name, value, isNull, argSpan));
            }
            if (!ok && args.Count < creation.Constructor.Parameters.Length) continue;
            layers.Add(new LayerSpec(field.Name, kind, args.ToEquatableArray(), span));
        }
        return layers;
    }

    private static IOperation? Unwrap(IOperation? op)
    {
        while (op is IConversionOperation conversion) op = conversion.Operand;
        return op;
    }

    private static bool DerivesFrom(ITypeSymbol? type, string baseName)
    {
        for (var t = type; t is not null; t = t.BaseType)
            if (t.ToDisplayString() == baseName) return true;
        return false;
    }

    // ---- Forward signature -------------------------------------------------------------------------------

    private void ReadInputs(IMethodSymbol forward, List<InputSpec> inputs)
    {
        int forwardSpan = SpanOf(forward);
        if (forward.Parameters.Length != 1)
        {
            Report(Descriptors.InputCount, forwardSpan, _type.Name, forward.Parameters.Length == 0 ? "takes no input" : $"takes {forward.Parameters.Length} inputs");
            if (forward.Parameters.Length == 0) return;
        }
        foreach (var p in forward.Parameters)
        {
            int span = SpanOf(p);
            if (p.Type.ToDisplayString() != TensorName)
            {
                Report(Descriptors.InputCount, span, _type.Name, $"takes '{p.Name}' of type '{p.Type.ToDisplayString()}'");
                continue;
            }
            var shapeAttr = p.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == ShapeAttributeName);
            if (shapeAttr is null || shapeAttr.ConstructorArguments.Length != 1 || shapeAttr.ConstructorArguments[0].Kind != TypedConstantKind.Array || shapeAttr.ConstructorArguments[0].IsNull)
            {
                Report(Descriptors.MissingShape, span, p.Name);
                continue;
            }
            var dims = new List<int>();
            bool ok = true;
            foreach (var v in shapeAttr.ConstructorArguments[0].Values)
            {
                if (v.Value is int d && d > 0) dims.Add(d);
                else
                {
                    Report(Descriptors.InvalidArgument, span, "Shape dimension", "of input '" + p.Name + "'", v.Value is int bad ? Invariant.Format(bad) : "not an int", "a positive size");
                    ok = false;
                }
            }
            if (dims.Count == 0 && ok)
            {
                Report(Descriptors.MissingShape, span, p.Name);
                ok = false;
            }
            if (ok) inputs.Add(new InputSpec(p.Name, dims.ToEquatableArray(), span));
        }
    }

    // ---- Forward body ------------------------------------------------------------------------------------

    private void ReadBody(IMethodSymbol forward, List<StatementSpec> body)
    {
        var syntax = forward.DeclaringSyntaxReferences.Select(r => r.GetSyntax(_ct)).OfType<MethodDeclarationSyntax>().FirstOrDefault();
        if (syntax is null) return;
        if (syntax.ExpressionBody is { } arrow)
        {
            var e = ReadExpr(arrow.Expression);
            if (e is not null) body.Add(new StatementSpec(StatementKind.Return, "", e, Span(arrow.Expression.GetLocation())));
            return;
        }
        if (syntax.Body is null)
        {
            Report(Descriptors.UnsupportedStatement, SpanOf(forward), "a Forward without a body");
            return;
        }
        foreach (var statement in syntax.Body.Statements)
        {
            _ct.ThrowIfCancellationRequested();
            switch (statement)
            {
                case LocalDeclarationStatementSyntax local:
                    foreach (var v in local.Declaration.Variables)
                    {
                        if (v.Initializer is null) continue;
                        var e = ReadExpr(v.Initializer.Value);
                        if (e is not null) body.Add(new StatementSpec(StatementKind.Assign, v.Identifier.ValueText, e, Span(v.GetLocation())));
                    }
                    break;
                case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assign } when assign.IsKind(SyntaxKind.SimpleAssignmentExpression) && assign.Left is IdentifierNameSyntax target:
                    {
                        var e = ReadExpr(assign.Right);
                        if (e is not null) body.Add(new StatementSpec(StatementKind.Assign, target.Identifier.ValueText, e, Span(assign.GetLocation())));
                        break;
                    }
                case ReturnStatementSyntax ret when ret.Expression is not null:
                    {
                        var e = ReadExpr(ret.Expression);
                        if (e is not null) body.Add(new StatementSpec(StatementKind.Return, "", e, Span(ret.Expression.GetLocation())));
                        return; // what follows a return never runs
                    }
                case EmptyStatementSyntax:
                    break;
                default:
                    Report(Descriptors.UnsupportedStatement, Span(statement.GetLocation()), Shorten(statement.ToString()));
                    break;
            }
        }
    }

    private ExprSpec? ReadExpr(ExpressionSyntax syntax)
    {
        _ct.ThrowIfCancellationRequested();
        int span = Span(syntax.GetLocation());
        switch (syntax)
        {
            case ParenthesizedExpressionSyntax p:
                return ReadExpr(p.Expression);
            case IdentifierNameSyntax id:
                return new ExprSpec(ExprKind.Variable, id.Identifier.ValueText, EquatableArray<ExprSpec>.Empty, EquatableArray<ArgSpec>.Empty, span);
            case BinaryExpressionSyntax bin when bin.IsKind(SyntaxKind.AddExpression) || bin.IsKind(SyntaxKind.MultiplyExpression) || bin.IsKind(SyntaxKind.SubtractExpression):
                {
                    var left = ReadExpr(bin.Left);
                    var right = ReadExpr(bin.Right);
                    if (left is null || right is null) return null;
                    string name = bin.IsKind(SyntaxKind.AddExpression) ? "Add" : bin.IsKind(SyntaxKind.SubtractExpression) ? "Subtract" : "Multiply";
                    return new ExprSpec(ExprKind.Op, name, new EquatableArray<ExprSpec>(new[] { left, right }), EquatableArray<ArgSpec>.Empty, Span(bin.OperatorToken.GetLocation()));
                }
            case InvocationExpressionSyntax call:
                return ReadCall(call, span);
            case CollectionExpressionSyntax or ArrayCreationExpressionSyntax or ImplicitArrayCreationExpressionSyntax:
                return ReadArray(syntax, span);
            default:
                Report(Descriptors.UnsupportedExpression, span, Shorten(syntax.ToString()),
                    "Forward combines tensors with layer.Apply(x), the operations " + string.Join(", ", OpCatalog.Names) + ", and the operators +, - and *");
                return null;
        }
    }

    private ExprSpec? ReadArray(ExpressionSyntax syntax, int span)
    {
        IEnumerable<ExpressionSyntax> elements = syntax switch
        {
            CollectionExpressionSyntax c => c.Elements.OfType<ExpressionElementSyntax>().Select(e => e.Expression),
            ArrayCreationExpressionSyntax a => a.Initializer?.Expressions ?? Enumerable.Empty<ExpressionSyntax>(),
            ImplicitArrayCreationExpressionSyntax i => i.Initializer.Expressions,
            _ => Enumerable.Empty<ExpressionSyntax>(),
        };
        var items = new List<ExprSpec>();
        foreach (var e in elements)
        {
            var item = ReadExpr(e);
            if (item is null) return null;
            items.Add(item);
        }
        return new ExprSpec(ExprKind.Array, "", items.ToEquatableArray(), EquatableArray<ArgSpec>.Empty, span);
    }

    private ExprSpec? ReadCall(InvocationExpressionSyntax call, int span)
    {
        // layer.Apply(x) or this.layer.Apply(x)
        if (call.Expression is MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Apply" } member)
        {
            string? layer = member.Expression switch
            {
                IdentifierNameSyntax id => id.Identifier.ValueText,
                MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax id } => id.Identifier.ValueText,
                _ => null,
            };
            if (layer is null || !_layerNames.Contains(layer))
            {
                Report(Descriptors.UnsupportedExpression, span, Shorten(call.ToString()), "Apply must be called on a layer field of this class");
                return null;
            }
            if (call.ArgumentList.Arguments.Count != 1)
            {
                Report(Descriptors.UnsupportedExpression, span, Shorten(call.ToString()), "a layer's Apply takes exactly one tensor");
                return null;
            }
            var arg = ReadExpr(call.ArgumentList.Arguments[0].Expression);
            if (arg is null) return null;
            return new ExprSpec(ExprKind.LayerApply, layer, new EquatableArray<ExprSpec>(new[] { arg }), EquatableArray<ArgSpec>.Empty, span);
        }

        string? name = call.Expression switch
        {
            IdentifierNameSyntax id => id.Identifier.ValueText,
            MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax or BaseExpressionSyntax, Name: IdentifierNameSyntax id } => id.Identifier.ValueText,
            _ => null,
        };
        if (name is null || !OpCatalog.TryGet(name, out var signature))
        {
            Report(Descriptors.UnsupportedExpression, span, Shorten(call.Expression.ToString()),
                "the operations are " + string.Join(", ", OpCatalog.Names) + ", and layers are applied with layer.Apply(x)");
            return null;
        }
        return ReadOpArguments(call, signature, span);
    }

    private ExprSpec? ReadOpArguments(InvocationExpressionSyntax call, OpSignature signature, int span)
    {
        var tensors = new List<ExprSpec>();
        var scalars = new List<ArgSpec>();
        var bound = new Dictionary<string, ArgumentSyntax>(StringComparer.Ordinal);
        var rest = new List<ArgumentSyntax>();
        int position = 0;
        foreach (var a in call.ArgumentList.Arguments)
        {
            if (a.NameColon is { } nc)
            {
                string n = nc.Name.Identifier.ValueText;
                if (!signature.Params.Any(p => p.Name == n))
                {
                    Report(Descriptors.UnsupportedExpression, Span(a.GetLocation()), signature.Name + "(" + n + ": ...)",
                        signature.Name + " has the parameters " + string.Join(", ", signature.Params.Select(p => p.Name)));
                    return null;
                }
                bound[n] = a;
                continue;
            }
            if (position < signature.Params.Length && signature.Params[position].Kind != OpParamKind.IntParams)
                bound[signature.Params[position++].Name] = a;
            else if (position < signature.Params.Length)
                rest.Add(a);
            else
            {
                Report(Descriptors.UnsupportedExpression, Span(a.GetLocation()), Shorten(call.ToString()), signature.Name + " takes " + Invariant.Format(signature.Params.Length) + " arguments");
                return null;
            }
        }

        bool ok = true;
        foreach (var p in signature.Params)
        {
            bound.TryGetValue(p.Name, out var arg);
            switch (p.Kind)
            {
                case OpParamKind.Tensor:
                case OpParamKind.TensorArray:
                    if (arg is null)
                    {
                        Report(Descriptors.UnsupportedExpression, span, Shorten(call.ToString()), signature.Name + " needs the tensor argument '" + p.Name + "'");
                        return null;
                    }
                    var t = ReadExpr(arg.Expression);
                    if (t is null) return null;
                    if ((p.Kind == OpParamKind.TensorArray) != (t.Kind == ExprKind.Array))
                    {
                        Report(Descriptors.UnsupportedExpression, Span(arg.GetLocation()), Shorten(arg.ToString()),
                            p.Kind == OpParamKind.TensorArray ? signature.Name + " takes an array of tensors, e.g. [a, b]" : "an array of tensors is only accepted by Concat");
                        return null;
                    }
                    tensors.Add(t);
                    break;
                case OpParamKind.IntParams:
                    {
                        var items = arg is not null ? new List<ArgumentSyntax> { arg } : rest;
                        var exprs = new List<ExpressionSyntax>();
                        foreach (var item in items)
                        {
                            if (item.Expression is CollectionExpressionSyntax c)
                                exprs.AddRange(c.Elements.OfType<ExpressionElementSyntax>().Select(e => e.Expression));
                            else if (item.Expression is ArrayCreationExpressionSyntax { Initializer: { } init })
                                exprs.AddRange(init.Expressions);
                            else if (item.Expression is ImplicitArrayCreationExpressionSyntax implicitArray)
                                exprs.AddRange(implicitArray.Initializer.Expressions);
                            else exprs.Add(item.Expression);
                        }
                        foreach (var e in exprs)
                            ok &= ReadScalar(e, p, signature.Name, scalars);
                        break;
                    }
                default:
                    if (arg is null)
                    {
                        if (p.Required)
                        {
                            Report(Descriptors.UnsupportedExpression, span, Shorten(call.ToString()), signature.Name + " needs the argument '" + p.Name + "'");
                            return null;
                        }
                        scalars.Add(new ArgSpec(p.Name, p.Default, p.DefaultIsNull, span));
                    }
                    else ok &= ReadScalar(arg.Expression, p, signature.Name, scalars);
                    break;
            }
        }
        if (!ok) return null;
        return new ExprSpec(ExprKind.Op, signature.Name, tensors.ToEquatableArray(), scalars.ToEquatableArray(), span);
    }

    private bool ReadScalar(ExpressionSyntax expression, OpParam param, string op, List<ArgSpec> into)
    {
        int span = Span(expression.GetLocation());
        var constant = Model(expression.SyntaxTree).GetConstantValue(expression, _ct);
        if (!constant.HasValue || !TryNumber(constant.Value, out double value, out bool isNull) || (isNull && param.Kind != OpParamKind.NullableInt))
        {
            Report(Descriptors.NonConstantArgument, span, param.Name, op, Shorten(expression.ToString()));
            return false;
        }
        into.Add(new ArgSpec(param.Name, value, isNull, span));
        return true;
    }

    // ---- helpers -----------------------------------------------------------------------------------------

    private static bool TryNumber(object? value, out double number, out bool isNull)
    {
        isNull = false;
        switch (value)
        {
            case null: number = 0; isNull = true; return true;
            case int i: number = i; return true;
            case long l: number = l; return true;
            case short s: number = s; return true;
            case byte b: number = b; return true;
            case float f: number = f; return true;
            case double d: number = d; return true;
            case bool flag: number = flag ? 1 : 0; return true;
            default: number = 0; return false;
        }
    }

    private SemanticModel Model(SyntaxTree tree)
    {
        if (!_models.TryGetValue(tree, out var model))
        {
#pragma warning disable RS1030 // A network's partial declarations may span trees; each needs its own semantic model.
            model = _compilation.GetSemanticModel(tree);
#pragma warning restore RS1030
            _models[tree] = model;
        }
        return model;
    }

    private int Span(Location location)
    {
        _spans.Add(location);
        return _spans.Count - 1;
    }

    private int SpanOf(ISymbol symbol)
    {
        var location = symbol.Locations.FirstOrDefault(l => l.IsInSource && !IsGenerated(l.SourceTree!));
        return location is null ? 0 : Span(location);
    }

    private void Report(DiagnosticDescriptor descriptor, int span, params string[] args)
        => _diagnostics.Add(DiagnosticInfo.Create(descriptor.Id, span, args));

    private static string Shorten(string text)
    {
        text = text.Replace("\r", " ").Replace("\n", " ");
        while (text.IndexOf("  ", StringComparison.Ordinal) >= 0) text = text.Replace("  ", " ");
        return text.Length <= 60 ? text : text.Substring(0, 57) + "...";
    }
}

/// <summary>A parsed network and the table that maps its span ids to source locations.</summary>
internal sealed class ParseResult
{
    public ParseResult(NetworkSpec spec, IReadOnlyList<Location> spans)
    {
        Spec = spec;
        Spans = spans;
    }

    public NetworkSpec Spec { get; }

    public IReadOnlyList<Location> Spans { get; }
}
