"""Generation: gan (MNIST digits), with its networks (gan_model), the classifier that judges the
samples (gan_judge), the Fréchet distance on the judge's features (fid) and figures (gan_report)."""
