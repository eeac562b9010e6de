"""The source: the ExpoPlatform export API, read in windows that lose no row.

- ``client``: ``ExportClient``, HTTP with retries, the API's clock; ``limiter``, ``api_errors``,
  ``export_page`` (a body -> a validated page, pure);
- ``api_clock``: the API's clock from ``Date`` headers (pure);
- ``windows``: ``Window``, ``Watermarks``, planning (pure); ``creation_stamps``;
- ``drift_rules`` with ``plan_commands``: what to request and verify (sans-io); ``leaf_parts``;
- ``reader``: ``WindowReader``, the executor of the drift rules' plan;
- ``rows`` (with ``row_times``, ``row_fields``, ``row_shapes``, ``local_time``): a row ->
  ``ParsedRow`` or ``DeadLetter``; ``assembly``: rows -> complete ``Meeting``\\s.
"""
