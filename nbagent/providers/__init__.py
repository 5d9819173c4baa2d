"""Model providers: the litellm adapter, the error table and the scripted model server."""
