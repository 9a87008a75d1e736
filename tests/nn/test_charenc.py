"""Character word encoders: id building, the char-CNN on ConvStack with masked padding, the char-BiLSTM."""
import pytest
import torch
from torch import nn

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.blocks import ConvStack
from seqlab.nn.charenc import (
    CHAR_PAD, CHAR_UNK, CharBiLSTMEncoder, CharCNNEncoder, CharTable, Dropout, char_encoder, char_ids,
)


def test_char_table_and_ids_values():
    table = CharTable("abcÄ’")
    assert len(table) == 7 and table.id("a") == 2 and table.id("’") == 6 and table.id("z") == CHAR_UNK
    ids, lengths = char_ids(["ab", "", "zÄ’c"], table)
    # "" gets one unknown character so every word has a vector; "z" is unknown
    assert ids.tolist() == [[2, 3, 0, 0], [CHAR_UNK, 0, 0, 0], [CHAR_UNK, 5, 6, 4]]
    assert lengths.tolist() == [2, 1, 4]
    assert ids.dtype == torch.long


def test_long_words_keep_prefix_and_suffix_and_empty_batches_work():
    table = CharTable("abcdefghij")
    ids, lengths = char_ids(["abcdefghij"], table, max_length=4)
    assert ids.tolist() == [[2, 3, 10, 11]] and lengths.tolist() == [4]  # "ab" + "ij"
    ids, lengths = char_ids([], table)
    assert ids.shape == (0, 1) and lengths.shape == (0,)
    with pytest.raises(InputError):
        char_ids(["a"], table, max_length=1)
    with pytest.raises(InputError):
        CharTable(["ab"])


def test_char_cnn_is_built_on_convstack_and_equals_the_manual_computation():
    torch.manual_seed(0)
    enc = CharCNNEncoder(num_chars=8, embedding_dim=5, filters=4, kernel=3).eval()
    assert isinstance(enc.conv, ConvStack)
    assert not any(isinstance(m, (nn.Conv1d,)) and m not in set(enc.conv.modules()) for m in enc.modules())
    ids = torch.tensor([[2, 3, 4, 0, 0], [5, 6, 7, 2, 3]])
    lengths = torch.tensor([3, 5])
    out = enc(ids, lengths)
    conv = enc.conv.layers[0].conv
    for row, n in enumerate(lengths.tolist()):
        # the word alone, unpadded: embed → conv (zero padding 1 on each side) → tanh → max over positions
        x = enc.embedding(ids[row, :n]).T.unsqueeze(0)
        manual = torch.tanh(nn.functional.conv1d(x, conv.weight, conv.bias, padding=1)).amax(-1)[0]
        assert torch.allclose(out[row], manual, atol=1e-6)


def test_padded_characters_do_not_change_a_word_vector():
    torch.manual_seed(0)
    enc = CharCNNEncoder(num_chars=20).eval()
    alone = enc(torch.tensor([[4, 5]]), torch.tensor([2]))
    # the same word padded to 6 characters in a batch, with garbage ids in its padding
    batch = torch.tensor([[4, 5, 9, 9, 9, 9], [3, 4, 5, 6, 7, 8]])
    padded = enc(batch, torch.tensor([2, 6]))
    assert torch.allclose(alone[0], padded[0], atol=1e-6)
    assert not torch.allclose(padded[0], enc(batch, torch.tensor([6, 6]))[0])  # the lengths do matter


def test_char_bilstm_concatenates_last_forward_and_first_backward_states():
    torch.manual_seed(0)
    enc = CharBiLSTMEncoder(num_chars=10, embedding_dim=4, hidden_size=3).eval()
    ids = torch.tensor([[2, 3, 4], [5, 6, 0]])
    out = enc(ids, torch.tensor([3, 2]))
    assert out.shape == (2, 6)
    rnn = enc.rnn.rnn
    for row, n in enumerate([3, 2]):
        outputs, _ = rnn(enc.embedding(ids[row:row + 1, :n]))  # alone, no padding
        expected = torch.cat([outputs[0, n - 1, :3], outputs[0, 0, 3:]])
        assert torch.allclose(out[row], expected, atol=1e-6)


def test_encoders_accept_no_words_and_factory_defaults():
    assert char_encoder("cnn", 10).output_size == 30 and char_encoder("cnn", 10).embedding.embedding_dim == 30
    assert char_encoder("lstm", 10).output_size == 50 and char_encoder("lstm", 10).embedding.embedding_dim == 25
    empty = torch.zeros(0, 1, dtype=torch.long)
    assert char_encoder("cnn", 10)(empty, torch.zeros(0, dtype=torch.long)).shape == (0, 30)
    with pytest.raises(ConfigError, match="cnn, lstm"):
        char_encoder("gru", 10)
    assert torch.all(char_encoder("cnn", 10).embedding.weight[CHAR_PAD] == 0)


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = Dropout(0.25)
    x = torch.ones(20000)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.02
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ConfigError):
        Dropout(1.0)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_char_cnn_inference_product_equals_the_convstack_path(kernel, activation):
    """In eval mode the char-CNN runs as one matrix product over character windows; it must equal
    the ConvStack path (train mode without dropout), padded characters holding any id."""
    torch.manual_seed(kernel)
    enc = CharCNNEncoder(num_chars=40, embedding_dim=6, filters=5, kernel=kernel, activation=activation)
    with torch.no_grad():
        enc.embedding.weight[CHAR_PAD].normal_()  # padding must not matter even with a non-zero row
    for words, chars in [(1, 1), (1, 7), (9, 6)]:
        ids = torch.randint(1, 40, (words, chars))
        lengths = torch.randint(1, chars + 1, (words,))
        lengths[0] = chars
        general = enc.train()(ids, lengths)
        fast = enc.eval()(ids, lengths)
        assert fast.shape == (words, 5)
        assert torch.allclose(fast, general, atol=1e-6), (fast - general).abs().max()
