"""seqlab.embeddings: pretrained word vectors for a model's embedding layer.

``word2vec`` trains skip-gram/CBOW vectors with gensim (or reads word2vec files) and
lines them up with a vocabulary as an ``nn.Embedding`` initialisation. Import the
submodule (``seqlab.embeddings.word2vec``); nothing is imported here, so importing the
package stays cheap.
"""
