"""The Redis transport the workers and relays use (workers/broker.py)."""

from __future__ import annotations

import redis

from refflow.config import load_settings
from refflow.workers import broker
from refflow.workers.celery_app import DELIVERY_QUEUE, celery_config, create_celery
from refflow.workers.publisher import celery_publisher


def test_redis_urls_get_the_transport_that_keeps_its_client(tmp_path):
    for url, transport in (("redis://127.0.0.1:6379/0", broker.TRANSPORT),
                           ("rediss://127.0.0.1:6380/0?ssl_cert_reqs=required", broker.TRANSPORT),
                           ("sentinel://127.0.0.1:26379", None)):
        settings = load_settings({}, data_dir=tmp_path, secret_key="x", broker_url=url)
        assert celery_config(settings)["broker_transport"] == transport


def test_one_client_per_channel_pool_and_messages_arrive(redis_server, tmp_path):
    settings = load_settings({}, data_dir=tmp_path, secret_key="x", broker_url=redis_server.url)
    app = create_celery(settings)
    publish = celery_publisher(app)
    queue = redis.Redis.from_url(redis_server.url)
    queue.delete(DELIVERY_QUEUE)
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)
        assert conn.transport.driver_type == "redis"  # Celery's Redis-only features stay on
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        channel._disconnect_pools()  # as after a fork or a lost connection
        assert channel._create_client() is not first
    for n in range(3):
        publish("refflow.deliver", {"delivery_id": f"d-{n}"})
    assert queue.llen(DELIVERY_QUEUE) == 3
    queue.delete(DELIVERY_QUEUE)
