"""seqlab.text"""
