"""Reference test subjects: self-supervised pretext tasks and two detectors, on generated data."""

from nndoctor.zoo.registry import ZooEntry, get_zoo, register_zoo, zoo_entries

__all__ = ["ZooEntry", "get_zoo", "register_zoo", "zoo_entries"]
