"""Records: runs and their notebooks, the tables and the metrics database, comparisons, cost,
reproducibility, plots and reports."""
