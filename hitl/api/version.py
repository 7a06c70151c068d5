"""GET /api/v1/version/: the server's release number, public (no key needed, any key ignored) so a
client or a deploy script can check what it talks to before it has credentials, as Gitea's does."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import hitl


class VersionView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="version",
        summary="The server's version",
        description="The release number (CHANGELOG.md), the same as `hitl --version`. No authentication.",
        auth=[],
        responses={200: inline_serializer("Version", {"version": serializers.CharField()})},
    )
    def get(self, request: Request) -> Response:
        return Response({"version": hitl.__version__})
