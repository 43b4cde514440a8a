"""Plots of pcmsim objects (matplotlib, Agg canvas: no display needed)."""
