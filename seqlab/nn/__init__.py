"""seqlab.nn"""
