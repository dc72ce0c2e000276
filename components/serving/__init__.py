"""What serves a registered version: the pyfunc RAG checkpoint, its models-from-code entry and the
highlight crops it answers with. The registry stages and logs these; it never serves them."""
