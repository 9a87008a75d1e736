"""seqlab.embeddings"""
