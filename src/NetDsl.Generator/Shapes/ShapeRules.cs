using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Shapes;

/// <summary>
/// One shape rule per operation: given the input shapes and the operation's constants, the output shape, or
/// a diagnostic that names both shapes and where the received one came from.
/// </summary>
internal sealed class ShapeRules
{
    private readonly List<Node> _nodes;

    public ShapeRules(List<Node> nodes) => _nodes = nodes;

    /// <summary>The diagnostic of the last failed rule.</summary>
    public DiagnosticInfo? Error { get; private set; }

    // ---- layers --------------------------------------------------------------------------------------------

    /// <summary>Linear: <c>[in] → [out]</c>, or <c>[T, in] → [T, out]</c> applied to the last dimension.</summary>
    public int[]? Linear(string layer, int inFeatures, int outFeatures, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        if (s.Length > 2)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, layer,
                "a flat input [B," + Invariant.Format(inFeatures) + "] (or a sequence [B,T," + Invariant.Format(inFeatures) + "])",
                ShapeMath.WithBatch(s), "; insert Flatten(...) before " + layer + " to get [B," + Invariant.Format(ShapeMath.Product(s)) + "]", Trail(input))
                .WithFix("fix", "flatten", "layer", layer, "features", Invariant.Format(ShapeMath.Product(s))));
        if (s.Length == 0)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, layer, "a flat input [B," + Invariant.Format(inFeatures) + "]", ShapeMath.WithBatch(s), "", Trail(input)));
        int k = s[s.Length - 1];
        if (k != inFeatures)
        {
            string factors = Factorization(input, k);
            var error = DiagnosticInfo.Create(Descriptors.FeatureMismatch.Id, span, layer,
                Invariant.Format(inFeatures) + " input features", Invariant.Format(k) + factors, Trail(input));
            return Fail(factors.Length > 0
                ? error.WithFix("fix", "argument", "layer", layer, "argument", "inFeatures", "value", Invariant.Format(k), "product", factors.Substring(3).Replace("x", " * "))
                : error.WithFix("fix", "argument", "layer", layer, "argument", "inFeatures", "value", Invariant.Format(k)));
        }
        var output = (int[])s.Clone();
        output[output.Length - 1] = outFeatures;
        return output;
    }

    /// <summary>Conv2d: <c>[C, H, W] → [O, OH, OW]</c>.</summary>
    public int[]? Conv2d(string layer, int inChannels, int outChannels, int kernel, int stride, int padding, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        if (s.Length != 3)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, layer,
                "an image batch [B," + Invariant.Format(inChannels) + ",H,W]", ShapeMath.WithBatch(s),
                s.Length < 3 ? "; reshape it to channels, height and width with Reshape(x, C, H, W)" : "", Trail(input)));
        if (s[0] != inChannels)
            return Fail(DiagnosticInfo.Create(Descriptors.FeatureMismatch.Id, span, layer,
                Invariant.Format(inChannels) + " input channels", Invariant.Format(s[0]) + " channels " + ShapeMath.WithBatch(s), Trail(input))
                .WithFix("fix", "argument", "layer", layer, "argument", "inChannels", "value", Invariant.Format(s[0])));
        return Window(layer, "conv2d", outChannels, kernel, stride, padding, input, span);
    }

    /// <summary>
    /// A layer that reads the features at per-sample axis <paramref name="axis"/> of a tensor of one of
    /// <paramref name="ranks"/> (BatchNorm: the channels at axis 0; LayerNorm and recurrent layers: the last axis).
    /// </summary>
    public int[]? Features(string layer, int features, string what, int[] ranks, string expectedShape, int input, int span, bool last = false, string argument = "")
    {
        int[] s = _nodes[input].Shape;
        if (Array.IndexOf(ranks, s.Length) < 0)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, layer, expectedShape, ShapeMath.WithBatch(s), "", Trail(input)));
        int axis = last ? s.Length - 1 : 0;
        if (s[axis] != features)
        {
            var error = DiagnosticInfo.Create(Descriptors.FeatureMismatch.Id, span, layer,
                Invariant.Format(features) + " " + what, Invariant.Format(s[axis]) + " " + what + " " + ShapeMath.WithBatch(s), Trail(input));
            return Fail(argument.Length > 0 ? error.WithFix("fix", "argument", "layer", layer, "argument", argument, "value", Invariant.Format(s[axis])) : error);
        }
        return s;
    }

    /// <summary>ConvTranspose2d: <c>[C, H, W] → [O, (H−1)·s − 2p + k + op, …]</c>.</summary>
    public int[]? ConvTranspose2d(string layer, int inChannels, int outChannels, int kernel, int stride, int padding, int outputPadding, int input, int span)
    {
        var s = Features(layer, inChannels, "input channels", new[] { 3 }, "an image batch [B," + Invariant.Format(inChannels) + ",H,W]", input, span, argument: "inChannels");
        if (s is null) return null;
        long oh = (long)(s[1] - 1) * stride - 2L * padding + kernel + outputPadding;
        long ow = (long)(s[2] - 1) * stride - 2L * padding + kernel + outputPadding;
        if (oh < 1 || ow < 1)
            return Fail(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, span, layer, "padding", Invariant.Format(padding),
                "a padding that leaves an output: on " + ShapeMath.WithBatch(s) + " the output would be " + Invariant.Format(oh) + "x" + Invariant.Format(ow)));
        if (oh > ShapeMath.MaxElements || ow > ShapeMath.MaxElements) return new[] { outChannels, int.MaxValue, int.MaxValue };
        return new[] { outChannels, (int)oh, (int)ow };
    }

    /// <summary>Upsample (nearest): <c>[C, H, W] → [C, H·s, W·s]</c>.</summary>
    public int[]? Upsample(string label, int scale, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        if (s.Length != 3)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, label, "an image batch [B,C,H,W]", ShapeMath.WithBatch(s), "", Trail(input)));
        long h = (long)s[1] * scale, w = (long)s[2] * scale;
        return new[] { s[0], (int)Math.Min(h, int.MaxValue), (int)Math.Min(w, int.MaxValue) };
    }

    /// <summary>Slice: <c>[start, start + length)</c> along a per-sample axis; null length squeezes the axis (Select).</summary>
    public int[]? Slice(string op, int axis, int start, int length, bool squeeze, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        int n = s[axis];
        if (start < 0 || start >= n || length < 1 || (long)start + length > n)
        {
            string expected = squeeze
                ? "an index from 0 to " + Invariant.Format(n - 1) + " (or -1 to -" + Invariant.Format(n) + ")"
                : "a start of 0 or more and a length of 1 or more with start + length at most " + Invariant.Format(n);
            string what = squeeze ? "index " + Invariant.Format(start) : "range [" + Invariant.Format(start) + ", " + Invariant.Format((long)start + length) + ")";
            return Fail(DiagnosticInfo.Create(Descriptors.IndexOutOfRange.Id, span, op, what, Invariant.Format(axis + 1), ShapeMath.WithBatch(s), expected, Trail(input)));
        }
        var output = new List<int>(s);
        if (squeeze) output.RemoveAt(axis);
        else output[axis] = length;
        return output.ToArray();
    }

    // ---- operations ----------------------------------------------------------------------------------------

    /// <summary>Max or average pooling: <c>[C, H, W] → [C, OH, OW]</c>.</summary>
    public int[]? Pool(string label, int kernel, int stride, int padding, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        if (s.Length != 3)
            return Fail(DiagnosticInfo.Create(Descriptors.RankMismatch.Id, span, label, "an image batch [B,C,H,W]", ShapeMath.WithBatch(s), "", Trail(input)));
        return Window(label, label, s[0], kernel, stride, padding, input, span);
    }

    private int[]? Window(string label, string op, int outChannels, int kernel, int stride, int padding, int input, int span)
    {
        int[] s = _nodes[input].Shape;
        long oh = ShapeMath.WindowOutput(s[1], kernel, stride, padding);
        long ow = ShapeMath.WindowOutput(s[2], kernel, stride, padding);
        if (oh < 1 || ow < 1)
        {
            bool heightFails = oh < 1;
            long need = Math.Max(1, (long)kernel - 2L * padding);
            return Fail(DiagnosticInfo.Create(Descriptors.SpatialTooSmall.Id, span, label,
                Invariant.Format(kernel), Invariant.Format(stride), Invariant.Format(padding), ShapeMath.WithBatch(s),
                Invariant.Format(oh) + "x" + Invariant.Format(ow),
                (heightFails ? "height " : "width ") + Invariant.Format(heightFails ? s[1] : s[2]),
                Invariant.Format(need), Trail(input)));
        }
        return new[] { outChannels, (int)oh, (int)ow };
    }

    /// <summary>Reshape to <paramref name="target"/> (one -1 allowed), keeping the element count.</summary>
    public int[]? Reshape(int[] target, int input, int span, int argSpan)
    {
        int[] s = _nodes[input].Shape;
        long have = ShapeMath.Product(s);
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1 && inferred < 0) { inferred = i; continue; }
            if (target[i] < 1)
                return Fail(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, argSpan, "Reshape dimension", Invariant.Format(i),
                    Invariant.Format(target[i]), "a positive size, or -1 once to infer it"));
            known *= target[i];
            if (known > ShapeMath.MaxElements) break;
        }
        var output = (int[])target.Clone();
        if (inferred >= 0)
        {
            if (known == 0 || have % known != 0)
                return Fail(DiagnosticInfo.Create(Descriptors.ReshapeMismatch.Id, span, ShapeMath.PerSample(target),
                    "a multiple of " + Invariant.Format(known), ShapeMath.WithBatch(s), Invariant.Format(have), Trail(input)));
            output[inferred] = (int)(have / known);
        }
        else if (known != have)
        {
            return Fail(DiagnosticInfo.Create(Descriptors.ReshapeMismatch.Id, span, ShapeMath.PerSample(target),
                Invariant.Format(known), ShapeMath.WithBatch(s), Invariant.Format(have), Trail(input)));
        }
        return output;
    }

    /// <summary>Same-shape elementwise operation.</summary>
    public int[]? Elementwise(string op, int a, int b, int span)
    {
        int[] sa = _nodes[a].Shape, sb = _nodes[b].Shape;
        if (!sa.SequenceEqual(sb))
            return Fail(DiagnosticInfo.Create(Descriptors.ElementwiseMismatch.Id, span, op,
                ShapeMath.WithBatch(sa), ShapeMath.WithBatch(sb), Trail(a), Trail(b)));
        return sa;
    }

    /// <summary>Maps a PyTorch dim (0 is the batch, negatives count from the end) to a per-sample axis.</summary>
    public int? Axis(string op, int dim, int input, int span)
    {
        int rank = _nodes[input].Shape.Length;
        int full = dim < 0 ? dim + rank + 1 : dim;
        if (full < 1 || full > rank)
        {
            Fail(DiagnosticInfo.Create(Descriptors.DimOutOfRange.Id, span, op, Invariant.Format(dim), ShapeMath.WithBatch(_nodes[input].Shape),
                rank == 1 ? "1 or -1 (dim 0 is the batch)" : "1 to " + Invariant.Format(rank) + " or -1 to -" + Invariant.Format(rank) + " (dim 0 is the batch)"));
            return null;
        }
        return full - 1;
    }

    /// <summary>Concatenation along a per-sample axis.</summary>
    public int[]? Concat(int axis, int dim, IReadOnlyList<int> parts, int span)
    {
        int[] first = _nodes[parts[0]].Shape;
        long total = 0;
        foreach (int p in parts)
        {
            int[] s = _nodes[p].Shape;
            bool fits = s.Length == first.Length;
            for (int i = 0; fits && i < s.Length; i++)
                if (i != axis && s[i] != first[i]) fits = false;
            if (!fits)
                return Fail(DiagnosticInfo.Create(Descriptors.ConcatMismatch.Id, span, Invariant.Format(dim),
                    string.Join(" and ", parts.Select(q => ShapeMath.WithBatch(_nodes[q].Shape) + " (from " + Trail(q) + ")"))));
            total += s[axis];
        }
        var output = (int[])first.Clone();
        output[axis] = (int)Math.Min(total, int.MaxValue);
        return output;
    }

    // ---- provenance ----------------------------------------------------------------------------------------

    /// <summary>
    /// How a tensor was produced, along its first inputs back to Forward's input:
    /// <c>x [B,3,32,32] → conv1 [B,32,32,32] → relu → max_pool2d(2) [B,32,16,16]</c>.
    /// </summary>
    public string Trail(int node)
    {
        var chain = new List<Node>();
        for (int id = node; id >= 0;)
        {
            var n = _nodes[id];
            chain.Add(n);
            id = n.Inputs.Length > 0 ? n.Inputs[0] : -1;
        }
        chain.Reverse();
        var parts = new List<string>();
        int[]? shown = null;
        foreach (var n in chain)
        {
            if (n.Label.Length == 0) continue;
            bool showShape = shown is null || !shown.SequenceEqual(n.Shape);
            parts.Add(showShape ? n.Label + " " + ShapeMath.WithBatch(n.Shape) : n.Label);
            if (showShape) shown = n.Shape;
        }
        // The final shape is the one that matters; keep it even if the tensor's own label repeats it.
        var last = _nodes[node];
        if (last.Label.Length == 0 && (shown is null || !shown.SequenceEqual(last.Shape)))
            parts.Add(ShapeMath.WithBatch(last.Shape));
        if (parts.Count > 14)
            parts = parts.Take(2).Concat(new[] { "…" }).Concat(parts.Skip(parts.Count - 10)).ToList();
        return string.Join(" → ", parts);
    }

    /// <summary><c> = 64x8x8</c> when a flat size came from flattening a larger shape.</summary>
    private string Factorization(int node, int size)
    {
        var n = _nodes[node];
        while (n.Op == OpKind.Reshape || n.Label.Length == 0 && n.Inputs.Length == 1 && _nodes[n.Inputs[0]].Shape.SequenceEqual(n.Shape))
        {
            var source = _nodes[n.Inputs[0]];
            if (n.Op == OpKind.Reshape && source.Shape.Length > 1 && ShapeMath.Product(source.Shape) == size)
                return " = " + ShapeMath.Factors(source.Shape);
            n = source;
        }
        return "";
    }

    private int[]? Fail(DiagnosticInfo error)
    {
        Error = error;
        return null;
    }
}
