"""Experiments: specs (a base preset and a list of config deltas), the runner that trains and evaluates them into run
folders, and the report that reads them back."""
