"""What a script sees at run time: the current run, the background metric logger."""
