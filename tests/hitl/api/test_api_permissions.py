"""Every request endpoint: allowed / other deployment → 404 / no permission → 403 (SPEC §10)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db


def call(world: World, who: str, method: str, path: str, body: dict | None = None):
    client = world.client_for(who)
    return getattr(client, method)(path, body or {}, format="json") if method == "post" else client.get(path)


ENDPOINTS = [
    ("get", "/api/v1/requests/{id}/", None),
    ("get", "/api/v1/requests/{id}/result/", None),
    ("post", "/api/v1/requests/{id}/respond/", {"outcome": "approved"}),
    ("post", "/api/v1/requests/{id}/cancel/", {}),
    ("post", "/api/v1/requests/{id}/reassign/", {"email": "x@example.com"}),
]
ACTS = {"/respond/": "respond", "/cancel/": "manage", "/reassign/": "manage"}


class TestRequestEndpoints:
    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    def test_the_full_key_is_allowed(self, world: World, method: str, path: str, body: dict | None) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        response = call(world, "key", method, path.format(id=request_id), body)
        assert response.status_code == 200, response.content

    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    @pytest.mark.parametrize("who", ["other_key", "stranger"])
    def test_other_deployments_get_404(self, world: World, who: str, method: str, path: str, body: dict | None) -> None:
        request_id = world.create()["id"]
        response = call(world, who, method, path.format(id=request_id), body)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    def test_a_read_only_key_sees_but_may_not_act(
        self, world: World, method: str, path: str, body: dict | None
    ) -> None:
        request_id = world.create()["id"]
        response = call(world, "read_key", method, path.format(id=request_id), body)
        acts = any(part in path for part in ACTS)
        assert response.status_code == (403 if acts else 200), response.content
        if acts:
            assert response.json()["code"] == "permission_denied"

    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    def test_the_assigned_responder_answers_but_does_not_manage(
        self, world: World, method: str, path: str, body: dict | None
    ) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        response = call(world, "responder", method, path.format(id=request_id), body)
        manages = "/cancel/" in path or "/reassign/" in path
        assert response.status_code == (403 if manages else 200), response.content

    def test_a_responder_does_not_see_requests_assigned_to_others(self, world: World) -> None:
        request_id = world.create(assign_to="someone@example.com")["id"]
        assert call(world, "responder", "get", f"/api/v1/requests/{request_id}/").status_code == 404

    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    def test_the_manager_may_do_everything_but_answer(
        self, world: World, method: str, path: str, body: dict | None
    ) -> None:
        request_id = world.create()["id"]
        expected = 403 if "/respond/" in path else 200  # manage is not respond (SPEC §10)
        assert call(world, "manager", method, path.format(id=request_id), body).status_code == expected

    def test_anonymous_and_bad_keys_get_401(self, world: World) -> None:
        request_id = world.create()["id"]
        assert world.client_for("anonymous").get(f"/api/v1/requests/{request_id}/").status_code == 401
        client = world.client_for("anonymous")
        client.credentials(HTTP_AUTHORIZATION="Bearer hitl_deadbeef_nope")
        response = client.get("/api/v1/requests/")
        assert response.status_code == 401 and response.json()["code"] == "invalid_api_key"

    def test_a_revoked_key_stops_working(self, world: World) -> None:
        from accounts.models import ApiKey
        from accounts.services import revoke_api_key

        revoke_api_key(ApiKey.objects.get(name="full"), actor="t")
        response = world.client_for("key").get("/api/v1/requests/")
        assert response.status_code == 401 and response.json()["code"] == "revoked_api_key"


class TestCreate:
    def test_keys_create_in_their_own_deployment_only(self, world: World) -> None:
        ok = world.client_for("key").post("/api/v1/requests/", {"message": "m", "emit_options": ["a"]}, format="json")
        assert ok.status_code == 201 and ok.json()["deployment"] == world.deployment.pk
        elsewhere = world.client_for("key").post(
            "/api/v1/requests/", {"message": "m", "emit_options": ["a"], "deployment": world.other.pk}, format="json"
        )
        assert elsewhere.status_code == 404

    def test_a_read_only_key_cannot_create(self, world: World) -> None:
        response = world.client_for("read_key").post(
            "/api/v1/requests/", {"message": "m", "emit_options": ["a"]}, format="json"
        )
        assert response.status_code == 403

    def test_users_need_manage_permission_to_create(self, world: World) -> None:
        body = {"message": "m", "emit_options": ["a"], "deployment": world.deployment.pk}
        assert world.client_for("manager").post("/api/v1/requests/", body, format="json").status_code == 201
        assert world.client_for("responder").post("/api/v1/requests/", body, format="json").status_code == 403
        assert world.client_for("stranger").post("/api/v1/requests/", body, format="json").status_code == 404


class TestList:
    def test_each_principal_lists_what_it_may_see(self, world: World) -> None:
        mine = world.create(assign_to="responder@example.com")["id"]
        theirs = world.create()["id"]
        ids = lambda who: {r["id"] for r in world.client_for(who).get("/api/v1/requests/").json()["results"]}  # noqa: E731
        assert ids("key") == {mine, theirs}
        assert ids("manager") == {mine, theirs}
        assert ids("responder") == {mine}
        assert ids("other_key") == set()
        assert ids("stranger") == set()

    def test_filters(self, world: World) -> None:
        a = world.create(method_name="approve_x", flow_id="run-1")["id"]
        b = world.create(method_name="review_y", flow_id="run-2", assign_to="z@example.com")["id"]
        world.client_for("key").post(f"/api/v1/requests/{b}/cancel/", {}, format="json")
        ids = lambda q: [r["id"] for r in world.client_for("key").get(f"/api/v1/requests/?{q}").json()["results"]]  # noqa: E731
        assert ids("status=pending") == [a]
        assert ids("status=cancelled,responded") == [b]
        assert ids("method_name=review_y") == [b]
        assert ids("flow_id=run-1") == [a]
        assert ids("assigned_to=Z@example.com") == [b]
        assert set(ids("created_after=2000-01-01T00:00:00Z")) == {a, b}
        assert ids("created_before=2000-01-01T00:00:00Z") == []
        bad = world.client_for("key").get("/api/v1/requests/?status=nope")
        assert bad.status_code == 400 and "status" in bad.json()["errors"]

    @pytest.mark.parametrize("who", ["manager", "key"])
    def test_the_query_count_does_not_grow_with_the_page(
        self, world: World, who: str, django_assert_max_num_queries
    ) -> None:
        for _ in range(3):
            world.create()
        client = world.client_for(who)
        with CaptureQueriesContext(connection) as small:
            assert len(client.get("/api/v1/requests/?limit=3").json()["results"]) == 3
        small_count = len(small.captured_queries)  # read now: the next request resets the query log
        assert small_count <= 8
        for _ in range(25):
            rid = world.create()["id"]
        world.client_for("key").post(f"/api/v1/requests/{rid}/respond/", {"outcome": "approved"}, format="json")
        with django_assert_max_num_queries(small_count):
            assert len(client.get("/api/v1/requests/?limit=28").json()["results"]) == 28


class TestNulInput:
    def test_nul_characters_are_a_clear_400(self, world: World) -> None:
        client = world.client_for("key")
        body = {"message": "a\x00b", "emit_options": ["x"]}
        response = client.post("/api/v1/requests/", body, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid"
        assert client.get("/api/v1/requests/?method_name=a%00b").status_code == 400
        assert HITLRequest.objects.count() == 0


class TestMalformedIds:
    @pytest.mark.parametrize("action", ["respond", "cancel", "reassign"])
    def test_an_id_the_url_accepts_but_no_uuid_is_a_404(self, world: World, action: str) -> None:
        # Matched by the URL's pattern (hex and dashes) but not a UUID: found by schemathesis as a 500.
        response = world.client_for("key").post(
            f"/api/v1/requests/-0000000000000000000000000000000/{action}/", {}, format="json"
        )
        assert response.status_code == 404 and response.json()["code"]
