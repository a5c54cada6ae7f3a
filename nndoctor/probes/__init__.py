"""Probes: hook sets that observe training and write a Recording. They never judge."""
