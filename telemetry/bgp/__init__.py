"""BGP compute awareness: metadata codecs, the ExaBGP JSON decoder, the managed speaker."""
