"""Training side of xgeo: rebuilds the shipped matcher weights from :mod:`xgeo.synth` alone."""
