"""The strategy lab: replay active learning on labelled data to measure whether a strategy beats random.

``lab.pool`` reads a labelled pool (a pool file or the workspace's own labels), ``lab.simulate``
replays rounds with the same head ``finetune`` trains, ``lab.report`` writes JSON, CSV, a plot and a
summary table, and ``lab.simulate.record`` stores each simulation so the app (and ``workbench simulate``) shows it.
"""
