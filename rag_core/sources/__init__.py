"""Where a doc set's files come from: a folder, a git repository or a website's sitemap."""
