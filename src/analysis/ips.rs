//! IP classes: the regions cut by every address and network the policy uses.
//! Networks are prefixes, so they nest: the classes are "network N minus the
//! networks inside it", numbered in pre-order so that a network is a
//! contiguous range of classes. IPv4-mapped IPv6 addresses are never a
//! value (evaluation sees them as IPv4).

use super::classes::Rep;
use crate::check::model::Lit;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The classes of an IP fact: representatives and each network's class range.
pub(crate) struct IpClasses {
    pub(crate) reps: Vec<Rep>,
    pub(crate) net_ranges: HashMap<IpNet, (u32, u32)>,
}

/// A network as a closed range of integers and its address family.
fn net_bounds(n: &IpNet) -> (bool, u128, u128) {
    match n {
        IpNet::V4(v4) => (
            true,
            u128::from(u32::from(v4.network())),
            u128::from(u32::from(v4.broadcast())),
        ),
        IpNet::V6(v6) => (false, u128::from(v6.network()), u128::from(v6.broadcast())),
    }
}

/// The IPv6 block whose addresses evaluation sees as IPv4 (never a v6 value).
fn mapped_block() -> (u128, u128) {
    let lo = u128::from(Ipv6Addr::from(0xffff_0000_0000u128));
    (lo, lo + u128::from(u32::MAX))
}

/// The classes cut by `nets` (the whole IPv4 and IPv6 spaces are added).
pub(crate) fn ip_classes(mut nets: Vec<IpNet>) -> IpClasses {
    nets.push(IpNet::V4(ipnet::Ipv4Net::default()));
    nets.push(IpNet::V6(ipnet::Ipv6Net::default()));
    let mut items: Vec<(bool, u128, u128, IpNet)> = nets
        .into_iter()
        .map(|n| {
            let n = n.trunc();
            let (v4, lo, hi) = net_bounds(&n);
            (v4, lo, hi, n)
        })
        .collect();
    // Family (v4 first), then start ascending, then widest first: a pre-order of the nesting.
    items.sort_by(|a, b| {
        (!a.0, a.1, std::cmp::Reverse(a.2)).cmp(&(!b.0, b.1, std::cmp::Reverse(b.2)))
    });
    items.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    let n = items.len();
    // Parent of each node, and where its subtree ends (exclusive, in pre-order
    // positions): prefixes nest, so a stack of open ancestors suffices.
    // All indexes below are < n by construction of the loops.
    let mut parent = vec![usize::MAX; n];
    let mut end = vec![n; n];
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..n {
        let (fam, lo, hi, _) = items[i];
        while let Some(&top) = stack.last() {
            let (tf, tlo, thi, _) = items[top];
            if tf == fam && tlo <= lo && hi <= thi {
                break;
            }
            end[top] = i;
            stack.pop();
        }
        if let Some(&top) = stack.last() {
            parent[i] = top;
        }
        stack.push(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(c) = children.get_mut(*p) {
            c.push(i);
        }
    }
    let (mlo, mhi) = mapped_block();
    // A representative for each node: an address in it outside its children.
    let mut reps: Vec<Option<IpAddr>> = Vec::with_capacity(n);
    for i in 0..n {
        let (v4, lo, hi, _) = items[i];
        let mut blocks: Vec<(u128, u128)> = children[i]
            .iter()
            .map(|&c| (items[c].1, items[c].2))
            .collect();
        if !v4 && lo <= mlo && mhi <= hi {
            blocks.push((mlo, mhi));
            blocks.sort_unstable();
        }
        let mut cursor = Some(lo);
        for (blo, bhi) in blocks {
            match cursor {
                Some(c) if blo > c => break,
                Some(c) if bhi >= c => cursor = bhi.checked_add(1),
                _ => {}
            }
        }
        let rep = cursor.filter(|c| *c <= hi).map(|c| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from(c as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(c))
            }
        });
        reps.push(rep);
    }
    // Compact: keep nonempty nodes; pre-order keeps subtrees contiguous.
    let mut compact = vec![0u32; n + 1];
    let mut count = 0u32;
    for i in 0..n {
        compact[i] = count;
        if reps[i].is_some() {
            count += 1;
        }
    }
    compact[n] = count;
    let mut net_ranges = HashMap::with_capacity(n);
    for i in 0..n {
        net_ranges.insert(items[i].3, (compact[i], compact[end[i]]));
    }
    IpClasses {
        reps: reps
            .into_iter()
            .flatten()
            .map(|ip| Rep::Value(Lit::Ip(ip)))
            .collect(),
        net_ranges,
    }
}
