//! The Varlink wire format, checked with a raw client (varlinkctl is not on Debian 12): GetInfo,
//! GetInterfaceDescription, InterfaceNotFound, oneway calls, and a plain org.bms.Manager call.

use bms_tests::raw::{error_name, RawConn};
use bms_tests::*;
use serde_json::json;

#[test]
fn get_info_names_the_service_and_its_interfaces() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // Exactly the bytes a Varlink client sends.
    c.send(b"{\"method\":\"org.varlink.service.GetInfo\"}\0");
    let r = c.read_message().unwrap();
    assert!(r.get("error").is_none(), "{r}");
    let p = &r["parameters"];
    assert_eq!(p["vendor"], "bms");
    assert_eq!(p["product"], "bmsd");
    assert_eq!(p["version"], bms_proto::VERSION);
    // bms has no web page: the url is empty rather than a made-up address.
    assert_eq!(p["url"], "", "{r}");
    let ifaces: Vec<&str> = p["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ifaces.contains(&"org.bms.Manager"), "{ifaces:?}");
    assert!(ifaces.contains(&"org.varlink.service"), "{ifaces:?}");
    // A plain reply does not continue.
    assert!(
        r.get("continues").is_none() || r["continues"] == false,
        "{r}"
    );
}

#[test]
fn interface_descriptions_are_served() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let r = c.call(
        &json!({"method": "org.varlink.service.GetInterfaceDescription",
        "parameters": {"interface": "org.bms.Manager"}}),
    );
    let desc = r["parameters"]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    let first = desc.lines().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        first.starts_with('#') || first.starts_with("interface org.bms.Manager"),
        "starts with {first:?}"
    );
    assert!(
        desc.lines()
            .any(|l| l.trim() == "interface org.bms.Manager"),
        "{desc}"
    );
    for m in [
        "method Status(",
        "method ListTargets(",
        "method AddJob(",
        "method Apply(",
        "error PermissionDenied",
    ] {
        assert!(desc.contains(m), "description lacks {m:?}");
    }
    let r = c.call(
        &json!({"method": "org.varlink.service.GetInterfaceDescription",
        "parameters": {"interface": "org.varlink.service"}}),
    );
    assert!(
        r["parameters"]["description"]
            .as_str()
            .unwrap()
            .contains("method GetInfo()"),
        "{r}"
    );

    // Unknown interface, both as a description request and as a call.
    let r = c.call(
        &json!({"method": "org.varlink.service.GetInterfaceDescription",
        "parameters": {"interface": "org.example.Nope"}}),
    );
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.InterfaceNotFound"),
        "{r}"
    );
    assert_eq!(r["parameters"]["interface"], "org.example.Nope");
    let r = c.call(&json!({"method": "org.example.Nope.Hello", "parameters": {}}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.InterfaceNotFound"),
        "{r}"
    );
    assert_eq!(r["parameters"]["interface"], "org.example.Nope");
    let r =
        c.call(&json!({"method": "org.varlink.service.GetInterfaceDescription", "parameters": {}}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.InvalidParameter"),
        "{r}"
    );
    assert_eq!(r["parameters"]["parameter"], "interface");
}

#[test]
fn oneway_calls_get_no_reply_but_take_effect() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send(b"{\"method\":\"org.bms.Manager.Status\",\"oneway\":true}\0");
    c.send(
        b"{\"method\":\"org.bms.Manager.AddTarget\",\"oneway\":true,\"parameters\":{\"target\":{\"name\":\"ow\",\"path\":\"/srv/ow\"}}}\0",
    );
    // The next call's reply is the first thing read.
    let r = c.call(&json!({"method": "org.varlink.service.GetInfo"}));
    assert_eq!(
        r["parameters"]["product"], "bmsd",
        "first reply read is not GetInfo's: {r}"
    );
    // The oneway write was carried out.
    let r = c.call(&json!({"method": "org.bms.Manager.GetTarget", "parameters": {"name": "ow"}}));
    assert_eq!(r["parameters"]["target"]["path"], "/srv/ow", "{r}");
    // A failing oneway call stays silent too.
    c.send(b"{\"method\":\"org.bms.Manager.NoSuch\",\"oneway\":true}\0");
    let r = c.call(&json!({"method": "org.bms.Manager.Status"}));
    assert_eq!(r["parameters"]["targets"], 2, "{r}");
}

#[test]
fn manager_calls_work_on_the_wire() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let r = c.call(&json!({"method": "org.bms.Manager.ListTargets", "parameters": {}}));
    let targets = r["parameters"]["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["name"], "local");
    // Parameters may be left out when a method takes none.
    let r = c.call(&json!({"method": "org.bms.Manager.ListJobs"}));
    assert_eq!(r["parameters"]["jobs"], json!([]), "{r}");
    // What bmsctl does, the wire does: a job added raw shows up in bmsctl.
    let src = d.dir.display().to_string();
    let r = c.call(
        &json!({"method": "org.bms.Manager.AddJob", "parameters": {"job": {
        "name": "raw", "sources": [src], "schedule": "hourly", "targets": ["local"]}}}),
    );
    assert_eq!(
        r["parameters"]["job"]["schedule_normalized"], "*-*-* *:00:00",
        "{r}"
    );
    assert_eq!(d.ctl_json(["job", "show", "raw"])["sources"], json!([src]));
}
