//! etcd's checks before a membership change (`--strict-reconfig-check`,
//! on by default): a change must not leave the cluster without a quorum of
//! started, connected voters. The rules are etcd 3.4's
//! (`etcdserver/server.go` `mayAddMember` / `mayRemoveMember` /
//! `mayPromoteMember`, `membership/cluster.go` `IsReadyTo*`).
//!
//! A member is *started* once it has published its name; a peer is
//! *connected* when a stream or the pipeline to it has been up for at least
//! [`HEALTH_INTERVAL`] (this member counts as connected).

use std::time::{Duration, Instant};

use etcdkit_proto::membership::Member;

use crate::error::{LEARNER_NOT_READY, MEMBER_NOT_ENOUGH_STARTED, UNHEALTHY};
use crate::peer::PeerTransport;

/// etcd's `HealthInterval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// etcd's `readyPercent`: a learner within 90% of the leader's log may be promoted.
const READY_PERCENT: f64 = 0.9;

fn voters(members: &[Member]) -> impl Iterator<Item = &Member> {
    members.iter().filter(|m| !m.is_learner)
}

fn started(m: &Member) -> bool {
    !m.name.is_empty()
}

/// Whether `id` has been connected since `since` (this member always is).
fn connected(peers: Option<&PeerTransport>, me: u64, id: u64, since: Instant) -> bool {
    id == me || peers.and_then(|p| p.active_since(id)).is_some_and(|t| t <= since)
}

/// Before adding a member (a voter unless `learner`).
pub fn may_add(members: &[Member], learner: bool, me: u64, peers: Option<&PeerTransport>) -> Result<(), tonic::Status> {
    if !learner {
        // IsReadyToAddVotingMember: the new voter counts as not started.
        let nmembers = 1 + voters(members).count();
        let nstarted = voters(members).filter(|m| started(m)).count();
        let ok = (nstarted == 1 && nmembers == 2) || nstarted > nmembers / 2;
        if !ok {
            return Err(MEMBER_NOT_ENOUGH_STARTED.into());
        }
    }
    let since = Instant::now().checked_sub(HEALTH_INTERVAL).unwrap_or_else(Instant::now);
    if !voters(members).all(|m| connected(peers, me, m.id, since)) {
        return Err(UNHEALTHY.into());
    }
    Ok(())
}

/// Before removing member `id`.
pub fn may_remove(members: &[Member], id: u64, me: u64, peers: Option<&PeerTransport>) -> Result<(), tonic::Status> {
    if members.iter().any(|m| m.id == id && m.is_learner) {
        return Ok(());
    }
    let rest: Vec<&Member> = voters(members).filter(|m| m.id != id).collect();
    if rest.iter().filter(|m| started(m)).count() < rest.len() / 2 + 1 {
        return Err(MEMBER_NOT_ENOUGH_STARTED.into());
    }
    // A member that is down can always be removed.
    if id != me && peers.and_then(|p| p.active_since(id)).is_none() {
        return Ok(());
    }
    let since = Instant::now().checked_sub(HEALTH_INTERVAL).unwrap_or_else(Instant::now);
    let all = voters(members).count();
    let active = voters(members).filter(|m| connected(peers, me, m.id, since)).count();
    if active < 1 + (all - 1) / 2 + 1 {
        return Err(UNHEALTHY.into());
    }
    Ok(())
}

/// Before promoting learner `id`, on the leader: its log must be within 90%
/// of the leader's (checked whatever `strict` says, as etcd), and with
/// `strict` the voters plus it must have a started quorum.
pub fn may_promote(
    members: &[Member],
    id: u64,
    progress: &[(u64, u64)],
    me: u64,
    strict: bool,
) -> Result<(), tonic::Status> {
    let leader = progress.iter().find(|(m, _)| *m == me).map_or(0, |p| p.1);
    if let Some((_, matched)) = progress.iter().find(|(m, _)| *m == id)
        && (*matched as f64) < READY_PERCENT * leader as f64
    {
        return Err(LEARNER_NOT_READY.into());
    }
    if strict {
        let nmembers = 1 + voters(members).count();
        let nstarted = 1 + voters(members).filter(|m| started(m)).count();
        if nstarted < nmembers / 2 + 1 {
            return Err(MEMBER_NOT_ENOUGH_STARTED.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str, learner: bool) -> Member {
        Member { id, name: name.into(), is_learner: learner, ..Default::default() }
    }

    #[test]
    fn started_quorums_as_etcd_counts_them() {
        // One started voter may add a second (etcd's special case), not a third when the second never started.
        assert!(may_add(&[m(1, "a", false)], false, 1, None).is_ok());
        let two = [m(1, "a", false), m(2, "", false)];
        assert_eq!(may_add(&two, false, 1, None).unwrap_err().message(), MEMBER_NOT_ENOUGH_STARTED.1);
        // A learner may still be added (it does not count) — if every voter is connected.
        assert_eq!(may_add(&two, true, 1, None).unwrap_err().message(), UNHEALTHY.1);
        // Removing the unstarted member is fine (it is not connected).
        assert!(may_remove(&two, 2, 1, None).is_ok());
        // A learner far behind cannot be promoted; one in sync can.
        let with_learner = [m(1, "a", false), m(3, "c", true)];
        let behind = may_promote(&with_learner, 3, &[(1, 100), (3, 50)], 1, true).unwrap_err();
        assert_eq!(behind.message(), LEARNER_NOT_READY.1);
        assert!(may_promote(&with_learner, 3, &[(1, 100), (3, 95)], 1, true).is_ok());
    }
}
