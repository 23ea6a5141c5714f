"""The emulated exportJobs service, an aiohttp application: its factory and server (``app``),
its state keys (``keys``), request reading (``reading``), Graph-shaped errors
(``middleware``), the exportJobs handlers (``handlers``), the job store and clock (``jobs``),
token checks (``auth``), OData query options (``odata``), the arrival log (``arrivals``),
the control API as a sub-app (``control``) and its client (``client``), and an in-process
runner (``embedded``)."""
