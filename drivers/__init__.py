"""Everything that talks to hardware and knows AT; nothing here knows deals or the marketplace."""
