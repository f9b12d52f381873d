//! keepalived's `virtual_routes` and `virtual_rules`: added by rtnetlink when an instance
//! becomes MASTER (after its addresses, which a route's `src` may need) and removed when it
//! leaves MASTER, stops or starts (so a crash-restart sweeps what the crashed run left, as
//! with the VIPs). Both carry keepalived's protocol number, so `ip route` and `ip rule` show
//! them as keepalived's (`proto keepalived`).

use std::net::IpAddr;

use lvs_config::{RouteType, VirtualRoute, VirtualRule};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType as Kind};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, RouteMessageBuilder};
use tracing::{info, warn};

use super::link;

/// RTPROT_KEEPALIVED.
const PROTOCOL: RouteProtocol = RouteProtocol::KeepAlived;

/// The route as netlink carries it; `None` when its `dev` does not exist (now).
fn route_message(route: &VirtualRoute) -> Option<RouteMessage> {
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.to.addr(), route.to.prefix_len())
        .ok()?;
    if let Some(via) = route.via {
        builder = builder.gateway(via).ok()?;
    }
    if let Some(src) = route.src {
        builder = builder.pref_source(src).ok()?;
    }
    if let Some(dev) = &route.dev {
        builder = builder.output_interface(link::index_of(dev)?);
    }
    if let Some(table) = route.table {
        builder = builder.table_id(table);
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    let scope = route
        .scope
        .map_or(RouteScope::Universe, |s| RouteScope::from(s.number()));
    let kind = match route.kind {
        RouteType::Unicast => Kind::Unicast,
        RouteType::Blackhole => Kind::BlackHole,
        RouteType::Unreachable => Kind::Unreachable,
        RouteType::Prohibit => Kind::Prohibit,
    };
    Some(builder.scope(scope).kind(kind).protocol(PROTOCOL).build())
}

fn rule_message(rule: &VirtualRule) -> RuleMessage {
    let mut message = RuleMessage::default();
    let v6 = rule.from.or(rule.to).is_some_and(|n| n.addr().is_ipv6());
    message.header.family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    message.header.action = RuleAction::ToTable;
    if let Ok(table) = u8::try_from(rule.table) {
        message.header.table = table;
    } else {
        message.attributes.push(RuleAttribute::Table(rule.table));
    }
    if let Some(from) = rule.from {
        message.header.src_len = from.prefix_len();
        message.attributes.push(RuleAttribute::Source(from.addr()));
    }
    if let Some(to) = rule.to {
        message.header.dst_len = to.prefix_len();
        message
            .attributes
            .push(RuleAttribute::Destination(to.addr()));
    }
    if let Some(priority) = rule.priority {
        message.attributes.push(RuleAttribute::Priority(priority));
    }
    message.attributes.push(RuleAttribute::Protocol(PROTOCOL));
    message
}

/// The kernel already has it (an add that is fine).
pub(super) fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// The kernel does not have it (a delete that is fine).
pub(super) fn absent(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if m.raw_code() == -libc::ESRCH || m.raw_code() == -libc::ENOENT)
}

/// Adds the routes, then the rules; one that is there already is fine.
pub async fn add(handle: &Handle, instance: &str, routes: &[VirtualRoute], rules: &[VirtualRule]) {
    for route in routes {
        let Some(message) = route_message(route) else {
            warn!(instance, "route to {}: no such device; not added", route.to);
            continue;
        };
        match handle.route().add(message).execute().await {
            Err(e) if !exists(&e) => warn!(instance, "adding route to {}: {e}", route.to),
            _ => {}
        }
    }
    for rule in rules {
        let mut request = handle.rule().add();
        *request.message_mut() = rule_message(rule);
        match request.execute().await {
            Err(e) if !exists(&e) => warn!(instance, "adding rule {rule:?}: {e}"),
            _ => {}
        }
    }
}

/// Removes the rules, then the routes, wherever they are; one that is not there is fine.
pub async fn remove(
    handle: &Handle,
    instance: &str,
    routes: &[VirtualRoute],
    rules: &[VirtualRule],
) {
    for rule in rules {
        match handle.rule().del(rule_message(rule)).execute().await {
            Ok(()) => info!(instance, "removed rule {rule:?}"),
            Err(e) if absent(&e) => {}
            Err(e) => warn!(instance, "removing rule {rule:?}: {e}"),
        }
    }
    for route in routes {
        // A route over a device that is gone went with it.
        let Some(message) = route_message(route) else {
            continue;
        };
        match handle.route().del(message).execute().await {
            Ok(()) => info!(instance, "removed route to {}", route.to),
            Err(e) if absent(&e) => {}
            Err(e) => warn!(instance, "removing route to {}: {e}", route.to),
        }
    }
}
