"""Context from the rest of the workspace: snippets of other files, as comments before the file's own text.

Where each step lives (all pure but `index.py`'s background thread and `service.py`, which holds state):
`ignore.py` reads .gitignore; `index.py` walks the workspace folders within size caps, off the event loop;
`imports.py` resolves what a file imports to indexed files; `declarations.py` outlines a file (its signatures);
`retrieval.py` finds similar windows of code (Jaccard over identifier sets, as RepoCoder); `snippets.py` picks a
document's snippets within the token budget, renders them as comments and keeps them stable while the person
types (the key/value cache); `service.py` ties them to the server's documents and settings.
"""
