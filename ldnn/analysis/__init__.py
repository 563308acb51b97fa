"""Analyses of trained networks: participation ratio, Hessian spectra, noisy descent."""
