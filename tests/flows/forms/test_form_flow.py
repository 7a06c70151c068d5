"""`@human_feedback(mode="form", schema=Model)` (SPEC §14): a server-side flow asks with a pydantic
model's schema (enum `$defs` inlined) and its listener receives an instance of the model."""

from __future__ import annotations

from enum import StrEnum

import pytest
from pydantic import BaseModel, Field

from flows.models import DeploymentFlow, FlowRun
from flows.registry import register
from flows.runtime import Flow, HumanFeedbackResult, human_feedback, listen, start
from hitl import services
from hitl.lib.errors import InvalidAnswer
from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db


class Risk(StrEnum):
    low = "low"
    high = "high"


class Region(StrEnum):
    eu = "eu"
    us = "us"


class VendorCheck(BaseModel):
    vendor: str = Field(min_length=2, max_length=80, description="As on the invoice")
    risk: Risk = Risk.low
    amount: float = Field(ge=1, le=10_000)
    approved: bool = False
    regions: list[Region] = []


class Optionalish(BaseModel):
    note: str | None = None


@register("test_form_vendor")
class VendorFlow(Flow):
    @start()
    @human_feedback(message="Check the vendor", mode="form", schema=VendorCheck, initial={"vendor": "Acme"})
    def draft(self):
        return "Invoice from Acme"

    @listen("draft")
    def record(self, result: HumanFeedbackResult):
        assert isinstance(result.form, VendorCheck)
        self.state["typed"] = type(result.form).__name__
        self.state["risk_is_enum"] = isinstance(result.form.risk, Risk)
        self.state["check"] = result.form.model_dump(mode="json")
        self.state["edited"] = result.edited_fields


@register("test_form_optional")
class OptionalFlow(Flow):
    @start()
    @human_feedback(message="Note?", schema=Optionalish)
    def ask(self):
        return "x"


def kickoff(world: World, flow: str) -> str:
    DeploymentFlow.objects.create(deployment=world.deployment, flow_name=flow)
    response = world.client_for("key").post(
        f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": flow, "inputs": {}}, format="json"
    )
    assert response.status_code in (200, 201, 202), response.content
    return str(response.json()["execution_id"])


class TestFormFlow:
    def test_the_listener_gets_the_pydantic_model(self, world: World) -> None:
        run_id = kickoff(world, "test_form_vendor")
        request = HITLRequest.objects.get(flow_id=run_id)
        assert request.mode == "form"
        props = request.form_schema["properties"]
        assert props["risk"] == {"enum": ["low", "high"], "type": "string", "default": "low"}
        assert props["regions"]["items"] == {"enum": ["eu", "us"], "type": "string"}
        assert props["amount"]["minimum"] == 1 and props["amount"]["maximum"] == 10_000
        assert "$defs" not in request.form_schema
        assert request.form_initial == {"vendor": "Acme"}

        with pytest.raises(InvalidAnswer):
            services.respond_to_request(
                request.pk, services.Answer(form={"vendor": "Acme", "amount": 0}), responder="a@x.example", source="api"
            )
        assert FlowRun.objects.get(pk=run_id).status == "waiting_for_human"
        values = {"vendor": "Acme", "risk": "high", "amount": 42, "approved": True, "regions": ["us"]}
        services.respond_to_request(request.pk, services.Answer(form=values), responder="a@x.example", source="api")
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed", run.error
        assert run.state["typed"] == "VendorCheck" and run.state["risk_is_enum"] is True
        assert run.state["check"] == {**values, "amount": 42.0}
        assert run.state["edited"] == ["risk", "amount", "approved", "regions"]

    def test_a_model_outside_the_subset_is_refused_by_name(self, world: World) -> None:
        run_id = kickoff(world, "test_form_optional")
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "failed"
        assert "could not create the review request" in run.error
        assert "properties.note" in run.error and "anyOf" in run.error
        assert not HITLRequest.objects.filter(flow_id=run_id).exists()
