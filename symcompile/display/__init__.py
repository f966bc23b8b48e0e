"""What a compile shows a person: the graph, derivatives, code and sizes as text
(`symcompile show`) and as an HTML page."""
