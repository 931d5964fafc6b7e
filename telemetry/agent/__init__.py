"""The site adapter agent (GBA-6.3): collects resources and load at a centre/MEC and
reports them to the controller over HTTPS with mutual TLS (``cpn agent --config``)."""
