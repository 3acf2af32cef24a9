"""Security: who a connection is and what it may do.

Principals (KafkaPrincipal), TLS contexts built from Kafka's `ssl.*` settings, the SASL
mechanisms' server side (PLAIN, SCRAM), the ACL authorizer and client quotas. Plain logic over
plain data: it never touches a socket (the network layer owns those) and never answers a
request (the api layer asks it and answers).
"""
