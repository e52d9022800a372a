using NetDsl;

namespace Samples.SequenceLstm;

/// <summary>
/// Reads a 28×28 image as a sequence of 28 rows of 28 pixels with an LSTM (batch-first, as
/// <c>nn.LSTM(28, 128, batch_first=True)</c>) and classifies it from the last hidden state. The generator unrolls
/// the 28 steps, so backpropagation through time is compiled code.
/// </summary>
[Network]
public partial class RowLstm
{
    readonly Lstm lstm = new(28, 128);
    readonly Linear fc = new(128, 10);

    Tensor Forward([Shape(28, 28)] Tensor rows)
    {
        var states = lstm.Apply(rows);               // [B, 28, 128]: every hidden state
        var last = Select(states, dim: 1, index: -1); // [B, 128]: the state after the last row
        return fc.Apply(last);
    }
}
