"""Who sends what to whom and when: protocols as ``async def`` actors that await only the
actor API (:mod:`simnet.actor`), so the simulation and the live runtime run them unchanged."""
