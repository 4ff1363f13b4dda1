"""Results: run directories, summaries, tables, figures, sim-vs-live comparison."""
