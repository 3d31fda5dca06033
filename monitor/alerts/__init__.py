"""Negative-spike alerts: detector (pure), queries, notifiers, scheduler, backtest and the NAB benchmark."""
