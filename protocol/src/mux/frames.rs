//! The frame types of the client and federation protocols, as the multiplexer sees them.

use super::{Frames, Inbound};
use crate::{
    client::{ClientFrame, RelayFrame, Request, Response},
    codec::DecodeError,
    errors::ErrorAnswer,
    federation::{FederationFrame, FederationRequest, FederationResponse},
};

/// A device's stream to its home relay (`/tidings/client/1`), from the device's side.
#[derive(Debug)]
pub struct ClientFrames;

impl Frames for ClientFrames {
    type Request = Request;
    type Answer = Result<Response, ErrorAnswer>;
    type Outgoing = ClientFrame;
    type Incoming = RelayFrame;

    fn request(id: u64, body: Request) -> ClientFrame {
        ClientFrame::Request { id, body }
    }

    fn decode(bytes: &[u8]) -> Result<RelayFrame, DecodeError> {
        RelayFrame::decode(bytes)
    }

    fn route(frame: RelayFrame) -> Inbound<Self::Answer, RelayFrame> {
        match frame {
            RelayFrame::Response { id, body } => Inbound::Answer { id, answer: body },
            other => Inbound::Other(other),
        }
    }
}

/// A relay's stream to another relay (`/tidings/federation/1`), from the side that opened it.
#[derive(Debug)]
pub struct FederationFrames;

impl Frames for FederationFrames {
    type Request = FederationRequest;
    type Answer = Result<FederationResponse, ErrorAnswer>;
    type Outgoing = FederationFrame;
    type Incoming = FederationFrame;

    fn request(id: u64, body: FederationRequest) -> FederationFrame {
        FederationFrame::Request { id, body }
    }

    fn decode(bytes: &[u8]) -> Result<FederationFrame, DecodeError> {
        FederationFrame::decode(bytes)
    }

    fn route(frame: FederationFrame) -> Inbound<Self::Answer, FederationFrame> {
        match frame {
            FederationFrame::Response { id, body } => Inbound::Answer { id, answer: body },
            other => Inbound::Other(other),
        }
    }
}
