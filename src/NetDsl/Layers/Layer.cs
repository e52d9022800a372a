namespace NetDsl;

/// <summary>
/// A layer declaration: a field of a <c>[Network]</c> class whose constructor arguments are compile-time
/// constants. The layer's parameters live in the network's flat parameter buffer, under PyTorch's
/// state_dict names (<c>fieldName.weight</c>, <c>fieldName.bias</c>). A layer applied more than once
/// shares its weights, and its gradients add up, as in PyTorch.
/// </summary>
public abstract class Layer
{
    private protected Layer() { }

    /// <summary>Applies the layer to a symbolic tensor inside <c>Forward</c>.</summary>
    public Tensor Apply(Tensor input) => throw Symbolic.NotExecutable();
}
