"""The emulated exportJobs service: an aiohttp application (``app``), its job store and
clock (``jobs``), token checks (``auth``), OData query options (``odata``), the arrival log
(``arrivals``), the control API (``control``) and an in-process runner (``embedded``)."""
