"""Patient access policies: who must approve a request for a data category, and on what terms."""
