"""A model's files, from the Hub or a folder to tensors in our layout: `hub` finds the folder and `config` reads
its config.json (both torch-free: the remote backend uses them in the server); `weights`, `layout`, `loading`
and the exports need torch and run in the worker or the CLI."""
