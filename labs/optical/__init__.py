"""Lab optical network elements: netconfd + OpenSSH per NE, plus an NE behaviour process."""
