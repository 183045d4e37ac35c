"""Domain logic: persist, fan out, audit. No aiohttp and no SQL here."""
