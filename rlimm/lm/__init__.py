"""Language modelling on Penn Treebank: a Kneser-Ney bigram teacher, an LSTM learner, noising vs IMM."""
