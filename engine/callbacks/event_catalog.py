"""The status events of the first seed and the attributes each reports by default.

Two families: flow events, fired by the states of a callback flow, and service events, fired by
the callback service when a record changes (seed 000, "Reference for Notification Events").
"""

from __future__ import annotations

FLOW_EVENTS: dict[str, tuple[str, ...]] = {
    "_cbe_on_service_create": ("_service_id", "_service_name", "_customer_number", "_urs_virtual_queue"),
    "_cbe_on_virtual_ixn_create": ("_service_id", "_service_name"),
    "_cbe_on_target_found": ("_service_id", "_service_name", "_urs_virtual_queue", "c_agent_id",
                             "c_agent_extension"),
    "_cbe_on_dial_init": ("_service_id", "_service_name", "_customer_number", "c_dialed_number"),
    "_cbe_on_dial_done": ("_service_id", "_service_name", "_customer_number", "c_dialed_number",
                          "c_call_result", "c_call_num_attempt"),
    "_cbe_on_connect_treatment_start": ("_service_id", "_service_name", "_vq_for_outbound_calls",
                                        "c_dialed_number"),
    "_cbe_on_customer_queued": ("_service_id", "_service_name", "_vq_for_outbound_calls", "c_dialed_number"),
    "_cbe_on_route_to_agent": ("_service_id", "_service_name", "c_agent_id", "c_agent_extension"),
    "_cbe_on_service_exit": ("_service_id", "_service_name", "c_dialed_number", "c_termination_type"),
}

DIAL_DONE = "_cbe_on_dial_done"  # the flow's report of one outbound attempt (c_call_result 0: answered)
_SERVICE_ATTRS = ("_service_id", "_service_name", "_desired_time", "_customer_number", "_v_queue")
SERVICE_EVENTS: dict[str, tuple[str, ...]] = {
    name: _SERVICE_ATTRS for name in (
        "_cbe_on_callback_scheduled", "_cbe_on_callback_rescheduled", "_cbe_on_callback_cancelled",
        "_cbe_on_callback_status_updated", "_cbe_on_callback_submitted", "_cbe_on_callback_resubmitted",
        "_cbe_on_callback_submit_failed", "_cbe_on_callback_processing_failed", "_cbe_on_callback_queued",
    )
}

ALL_EVENTS: dict[str, tuple[str, ...]] = {**FLOW_EVENTS, **SERVICE_EVENTS}
