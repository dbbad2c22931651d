"""Testing helpers shipped with the package: fakes in the real on-disk layouts."""
