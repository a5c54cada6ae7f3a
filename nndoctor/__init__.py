"""nndoctor: a training doctor for PyTorch."""
