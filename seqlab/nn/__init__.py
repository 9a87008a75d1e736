"""seqlab.nn: the common core of building blocks shared by every task.

Activations, MLP and the one conv-stack builder (``blocks``), text-CNN, character
encoders, recurrent cells (textbook equations) and encoders (fused kernels), pooling,
attention, seq2seq and decoding, CRF, CTC, autoencoders and GANs, truncated BPTT and
clipping. Names load on first use, so importing one module does not import them all.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "activations": ["ACTIVATION_NAMES", "Activation", "activate", "activation", "derivative"],
    "blocks": ["ConvLayerSpec", "ConvStack", "ConvStackConfig", "MLP", "MLPConfig", "conv_output_length",
               "pool_output_length", "transposed_conv_output_length"],
    "textcnn": ["TextCNNConfig", "TextCNNEncoder"],
    "charenc": ["CharBiLSTMEncoder", "CharCNNEncoder", "char_encoder"],
    "dropout": ["Dropout"],
    "cells": ["ElmanCell", "GRUCell", "LSTMCell", "RecurrentLayer", "UnrolledRNN"],
    "recurrent": ["BiLSTMEncoder", "PaddedBiRecurrentEncoder", "RecurrentEncoder", "RecurrentEncoderConfig",
                  "StackedRecurrentEncoder"],
    "masking": ["lengths_to_mask"],
    "pooling": ["SequencePooling"],
    "attention": ["AdditiveAttention", "DotAttention", "GeneralAttention", "build_attention"],
    "seq2seq": ["Seq2Seq", "Seq2SeqConfig"],
    "decoding": ["Hypothesis", "beam_search", "greedy_search"],
    "crf": ["CRF"],
    "autoencoder": ["Autoencoder", "ContractiveAutoencoder", "ConvAutoencoder", "DenoisingAutoencoder",
                    "DenseAutoencoder", "SequenceAutoencoder", "SparseAutoencoder", "UndercompleteAutoencoder",
                    "VariationalAutoencoder"],
    "gan": ["DCGAN", "GAN", "ConditionalGAN", "VanillaGAN", "discriminator_loss", "generator_loss"],
    "tbptt": ["TruncatedBPTT", "bptt_windows", "detach_state", "reset_state", "stream_batches", "truncated_bptt"],
    "clipping": ["clip_gradients"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'seqlab.nn' has no attribute {name!r}")
