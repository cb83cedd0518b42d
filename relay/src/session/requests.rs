//! A session's requests: decoding each frame and handling what it asks.

use tidings_protocol::{
    BoundedVec,
    client::{ClientFrame, Request},
    codec,
};

use super::*;

impl Session {
    pub(super) async fn on_frame(&mut self, bytes: &[u8]) -> Flow {
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(error) => return self.on_undecodable(bytes, &error),
        };
        match frame {
            ClientFrame::Request { id, body } => self.on_request(id, body).await,
            ClientFrame::Ack { up_to } => {
                self.on_ack(up_to);
                Flow::Continue
            }
            // Reading it refreshed `last_heard`.
            ClientFrame::Ping => Flow::Continue,
        }
    }

    /// A frame that does not decode: answer the request it claims to be, if it names one,
    /// so newer clients with requests we do not know keep their stream; otherwise close.
    fn on_undecodable(&mut self, bytes: &[u8], error: &codec::DecodeError) -> Flow {
        let answer = ErrorAnswer::new(ErrorCode::Malformed, error.to_string());
        match tidings_protocol::framing::request_id(bytes) {
            Some(id) => {
                self.respond(id, Err(answer));
                Flow::Continue
            }
            None => self.fatal(answer),
        }
    }

    async fn on_request(&mut self, id: u64, request: Request) -> Flow {
        if let (Request::Send { envelopes }, Some(_)) = (&request, self.user) {
            if !self.sends.has_room(envelopes.len()) {
                self.flush_sends();
            }
            if let Request::Send { envelopes } = request {
                self.sends.push(id, envelopes);
            }
            return Flow::Continue;
        }
        // Sends read before this request are handled before it.
        self.flush_sends();
        if let Request::Register(register) = request {
            let (answer, user) =
                register::handle(&self.cx, self.peer, self.device, self.user, *register).await;
            if user.is_some() {
                self.user = user;
            }
            self.respond(id, answer);
            return Flow::Continue;
        }
        // A device being linked takes its package before it can register.
        if let Request::TakeLink = request {
            let answer = link::take(&self.cx, self.device);
            self.respond(id, answer);
            return Flow::Continue;
        }
        // A device restored from an account export reads its account's list (public key
        // material) before it registers with a newer one naming it.
        if let (None, Request::GetDeviceList { user }) = (self.user, &request) {
            // Only what this relay holds: a stream that is not registered triggers no lookups.
            let answer = self
                .cx
                .store
                .home_device_list(*user, self.cx.network.peer_id().to_string())
                .await
                .map(|list| Response::DeviceList {
                    list: list.map(Box::new),
                    seen: BoundedVec::default(),
                })
                .map_err(storage_answer);
            self.respond(id, answer);
            return Flow::Continue;
        }
        let Some(me) = self.address() else {
            self.respond(
                id,
                Err(ErrorAnswer::new(
                    ErrorCode::NotRegistered,
                    "register this device first",
                )),
            );
            return Flow::Continue;
        };
        let work: BoxFuture<'static, Answer> = match request {
            Request::Register(_) => return Flow::Continue,
            Request::Subscribe => {
                let answer = match Pump::start(&self.cx, me).await {
                    Ok((pump, response)) => {
                        self.pump = Some(pump);
                        // What a push would have announced is delivered now.
                        self.cx.push.cancel(&self.device);
                        Ok(response)
                    }
                    Err(error) => Err(storage_answer(error)),
                };
                self.respond(id, answer);
                if self.pump.is_some() && !self.online {
                    self.online = true;
                    self.last_heard = Instant::now();
                    self.cx
                        .presence
                        .connect(me, self.id, self.live.clone())
                        .await;
                }
                return Flow::Continue;
            }
            Request::PublishHome(record) => Box::pin(home::publish(self.cx.clone(), me, *record)),
            Request::ClaimBundles { devices } => {
                Box::pin(keys::claim_many(self.cx.clone(), me, devices.into_vec()))
            }
            // Registered devices' sends were taken above.
            Request::Send { .. } => return Flow::Continue,
            Request::UploadKeys(upload) => Box::pin(keys::upload(self.cx.clone(), me, *upload)),
            Request::ClaimBundle { device } => Box::pin(keys::claim(self.cx.clone(), me, device)),
            Request::SetPresence {
                visibility,
                allowed,
            } => Box::pin(presence::set(
                self.cx.clone(),
                me,
                visibility,
                allowed.into_vec(),
            )),
            Request::WatchPresence { users } => Box::pin(presence::watch(
                self.cx.clone(),
                self.id,
                me,
                self.live.clone(),
                users.into_vec(),
            )),
            Request::Ephemeral { envelope } => {
                Box::pin(presence::ephemeral(self.cx.clone(), me, envelope))
            }
            Request::GroupVersions { group, from } => {
                Box::pin(groups::versions(self.cx.clone(), me, group, from))
            }
            Request::PublishDeviceList { list } => {
                Box::pin(devices::publish(self.cx.clone(), me, *list))
            }
            Request::GetDeviceList { user } => Box::pin(devices::get(self.cx.clone(), me, user)),
            Request::PutLink { device, package } => {
                Box::pin(link::put(self.cx.clone(), me, device, package))
            }
            Request::TakeLink => return Flow::Continue,
            Request::SetPush { subscription } => {
                Box::pin(push::set(self.cx.clone(), me, subscription))
            }
            Request::GetPush => Box::pin(push::get(self.cx.clone(), me)),
            Request::PutProfile { profile } => {
                Box::pin(crate::profiles::put(self.cx.profiles(), me, *profile))
            }
            Request::GetProfile { user } => {
                Box::pin(crate::profiles::get(self.cx.profiles(), me, user))
            }
            Request::PostStatus(post) => {
                let cx = self.cx.clone();
                Box::pin(async move { cx.status.post(me, *post, &cx.directory).await })
            }
            Request::GetStatuses { after_ms } => {
                let board = self.cx.status.clone();
                Box::pin(async move { board.get(me, after_ms).await })
            }
        };
        self.inflight.push_back(Box::pin(async move {
            vec![RelayFrame::Response {
                id,
                body: work.await,
            }]
        }));
        Flow::Continue
    }

    /// The device's key, decompressed at the first call (`None` if it is no usable key:
    /// its envelopes are then refused as the verification finds).
    pub(super) fn sender_key(&mut self) -> Option<SenderKey> {
        if self.sender_key.is_none() {
            self.sender_key = SenderKey::of(self.device).ok();
        }
        self.sender_key.clone()
    }

    fn on_ack(&mut self, up_to: u64) {
        let (Some(pump), Some(user), device) = (self.pump.as_mut(), self.user, self.device) else {
            return;
        };
        let Some((up_to, newly_acked)) = pump.on_ack(up_to) else {
            return;
        };
        self.cx
            .metrics
            .envelopes_delivered(DeliveryStage::Acked, newly_acked as usize);
        tracing::trace!(%user, up_to, "ack");
        let store = self.cx.store.clone();
        self.inflight.push_back(Box::pin(async move {
            if let Err(error) = store.ack(device, up_to).await {
                // The entries stay and are delivered again; the device drops the duplicates.
                tracing::warn!(%error, "mailbox ack not stored");
            }
            Vec::new()
        }));
    }
}
