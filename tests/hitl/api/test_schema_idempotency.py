"""Every operation that takes an Idempotency-Key documents what the key can answer (found by schemathesis)."""


class TestIdempotencyResponses:
    def test_it_documents_409_and_422_where_a_key_is_taken(self, client, db) -> None:
        d = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        post = d["paths"]["/api/v1/requests/"]["post"]["responses"]
        assert "422" in post and "409" in post
        assert "422" not in d["paths"]["/api/v1/requests/"]["get"]["responses"]
