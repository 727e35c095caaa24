"""Code both sides import: the codec and the quality metrics. No network or disk I/O."""
