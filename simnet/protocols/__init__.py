"""Who sends what to whom and when: protocols as SimPy processes over a World."""
