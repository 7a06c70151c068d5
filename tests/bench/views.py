"""The baseline every throughput figure is a ratio to: a bare view behind the same stack (gunicorn,
middleware, database) that inserts one row and returns JSON. No authentication, routing or audit."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import BaselineRow


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        payload = {}
    row = BaselineRow.objects.create(payload=payload)
    return JsonResponse({"id": row.pk}, status=201)
