"""``manage.py simulate_providers``: run the provider simulator (channels_app/simulator)."""

from django.core.management.base import BaseCommand

from channels_app.simulator.pacing import RateRule
from channels_app.simulator.server import SimulatorServer
from channels_app.simulator.state import Simulator


class Command(BaseCommand):
    help = "Run a simulator of every provider's send API that posts signed receipts back."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument(
            "--callback-base",
            default="",
            help="our base URL; receipts go to <base>/webhooks/receipts/<provider> unless a "
            "webhook is registered or the send names a callback",
        )
        parser.add_argument(
            "--secret",
            default="simulator-secret",
            help="signs receipts of providers whose signing secret is not the send credential "
            "(Messenger/WhatsApp app secret, Vonage signature secret)",
        )
        parser.add_argument("--deliver-after", type=float, default=1.0)
        parser.add_argument("--read-after", type=float, default=2.0)
        parser.add_argument(
            "--latency", type=float, default=0.0, help="answer every send after this many seconds"
        )
        parser.add_argument(
            "--rate-limit",
            type=float,
            default=0.0,
            help="sends per second each account may make; above it, 429 with Retry-After",
        )
        parser.add_argument("--rate-limit-burst", type=float, default=0.0)
        parser.add_argument("--rate-limit-per", choices=("account", "sender"), default="account")
        parser.add_argument(
            "--send-log",
            default="",
            help="append every send request received to this file, one JSON line each",
        )

    def handle(self, *args, host, port, callback_base, secret, deliver_after, read_after, **opts):
        rule = None
        if opts["rate_limit"]:
            rule = RateRule(opts["rate_limit"], opts["rate_limit_burst"], opts["rate_limit_per"])
        simulator = Simulator(
            callback_base=callback_base,
            secret=secret,
            deliver_after=deliver_after,
            read_after=read_after,
            send_log=opts["send_log"],
            latency=opts["latency"],
            rate_limit=rule,
        )
        server = SimulatorServer((host, port), simulator)
        self.stdout.write(f"provider simulator on {server.base_url}", ending="\n")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
