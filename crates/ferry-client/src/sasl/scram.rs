//! SCRAM-SHA-256 and SCRAM-SHA-512 clients (RFC 5802, RFC 7677), as Kafka
//! speaks them (KIP-84): no channel binding, the username escaped but not
//! SASLprep-normalised, at least 4096 iterations.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

use super::{Failure, Mechanism, Step};
use crate::secret::Secret;

/// Kafka refuses to store SCRAM credentials with fewer iterations.
const MIN_ITERATIONS: u32 = 4096;
/// More than any sane server asks for; a bound so a hostile server cannot
/// make us spin.
const MAX_ITERATIONS: u32 = 1_000_000;

/// Which hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

enum State {
    Initial,
    /// Sent client-first; waiting for server-first.
    SentFirst {
        client_first_bare: String,
    },
    /// Sent client-final; waiting for the server's signature.
    SentFinal {
        expected: hmac::Key,
        auth_message: String,
    },
    Done,
}

pub(crate) struct Scram {
    hash: Hash,
    username: String,
    password: Secret,
    nonce: String,
    state: State,
}

impl Scram {
    pub(crate) fn new(hash: Hash, username: &str, password: Secret) -> Result<Self, Failure> {
        let mut bytes = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| Failure::local("the system random number generator failed"))?;
        Ok(Self::with_nonce(
            hash,
            username,
            password,
            B64.encode(bytes),
        ))
    }

    fn with_nonce(hash: Hash, username: &str, password: Secret, nonce: String) -> Self {
        Self {
            hash,
            username: username.to_owned(),
            password,
            nonce,
            state: State::Initial,
        }
    }

    fn client_final(
        &self,
        client_first_bare: &str,
        server_first: &str,
    ) -> Result<(String, hmac::Key, String), Failure> {
        let attrs = attributes(server_first)?;
        let nonce = attr(&attrs, 'r', server_first)?;
        let salt = attr(&attrs, 's', server_first)?;
        let iterations = attr(&attrs, 'i', server_first)?;
        if attrs.first().map(|(k, _)| *k) == Some('m') {
            return Err(Failure::protocol(
                "the broker asks for a SCRAM extension ferry does not know",
            ));
        }
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(Failure::protocol(
                "the broker's SCRAM nonce does not extend ours",
            ));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| Failure::protocol("the broker's SCRAM salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| Failure::protocol("the broker's SCRAM iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Failure::protocol(format!(
                "the broker asks for {iterations} SCRAM iterations; ferry accepts \
                 {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let iterations = NonZeroU32::new(iterations)
            .ok_or_else(|| Failure::protocol("zero SCRAM iterations"))?;

        let mut salted = vec![0u8; self.hash.len()];
        pbkdf2::derive(
            self.hash.pbkdf2(),
            iterations,
            &salt,
            self.password.expose().as_bytes(),
            &mut salted,
        );
        let salted = hmac::Key::new(self.hash.hmac(), &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        // c=biws is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac::sign(
            &hmac::Key::new(self.hash.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_key = hmac::Key::new(self.hash.hmac(), server_key.as_ref());
        let message = format!("{without_proof},p={}", B64.encode(proof));
        Ok((message, server_key, auth_message))
    }
}

impl Mechanism for Scram {
    fn step(&mut self, server: Option<&[u8]>) -> Result<Step, Failure> {
        match (std::mem::replace(&mut self.state, State::Done), server) {
            (State::Initial, None) => {
                let client_first_bare = format!("n={},r={}", escape(&self.username), self.nonce);
                let message = format!("n,,{client_first_bare}");
                self.state = State::SentFirst { client_first_bare };
                Ok(Step::Send(message.into_bytes()))
            }
            (State::SentFirst { client_first_bare }, Some(server_first)) => {
                let server_first = utf8(server_first)?;
                let (message, expected, auth_message) =
                    self.client_final(&client_first_bare, server_first)?;
                self.state = State::SentFinal {
                    expected,
                    auth_message,
                };
                Ok(Step::Send(message.into_bytes()))
            }
            (
                State::SentFinal {
                    expected,
                    auth_message,
                },
                Some(server_final),
            ) => {
                let server_final = utf8(server_final)?;
                let attrs = attributes(server_final)?;
                if let Ok(error) = attr(&attrs, 'e', server_final) {
                    return Err(Failure::rejected(format!("the broker said {error:?}")));
                }
                let signature = B64
                    .decode(attr(&attrs, 'v', server_final)?)
                    .map_err(|_| Failure::protocol("the broker's SCRAM signature is not base64"))?;
                hmac::verify(&expected, auth_message.as_bytes(), &signature).map_err(|_| {
                    Failure::protocol(
                        "the broker's SCRAM server signature is wrong: it does not know this \
                         user's password, so it may not be the broker it claims to be",
                    )
                })?;
                Ok(Step::Done)
            }
            _ => Err(Failure::protocol("unexpected SCRAM exchange step")),
        }
    }
}

/// `saslname` escaping: `=` and `,` may not appear raw.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn utf8(bytes: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(bytes).map_err(|_| Failure::protocol("a SCRAM message is not UTF-8"))
}

fn attributes(message: &str) -> Result<Vec<(char, &str)>, Failure> {
    message
        .split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(key), Some('=')) => Ok((key, &part[key.len_utf8() + 1..])),
                _ => Err(Failure::protocol("a SCRAM message is malformed")),
            }
        })
        .collect()
}

fn attr<'a>(attrs: &[(char, &'a str)], key: char, _message: &str) -> Result<&'a str, Failure> {
    attrs
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| Failure::protocol(format!("a SCRAM message has no {key}= attribute")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(step: Result<Step, Failure>) -> String {
        match step {
            Ok(Step::Send(bytes)) => String::from_utf8(bytes).unwrap_or_default(),
            Ok(Step::Done) => "done".to_owned(),
            Err(e) => format!("error: {}", e.detail),
        }
    }

    /// The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
    #[test]
    fn rfc7677_example() {
        let mut s = Scram::with_nonce(
            Hash::Sha256,
            "user",
            Secret::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".to_owned(),
        );
        assert_eq!(send(s.step(None)), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            send(s.step(Some(server_first))),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            send(s.step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))),
            "done"
        );
    }

    #[test]
    fn a_wrong_server_signature_fails() {
        let mut s = Scram::with_nonce(Hash::Sha256, "user", Secret::new("pencil"), "abc".into());
        let _ = s.step(None);
        let _ = s.step(Some(b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        let out = send(s.step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")));
        assert!(out.contains("server signature is wrong"), "{out}");
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for (server_first, why) in [
            ("r=xyz1,s=AAAA,i=4096", "nonce"),
            ("r=abc,s=AAAA,i=4096", "nonce"),
            ("r=abc1,s=AAAA,i=1", "iterations"),
            ("r=abc1,s=AAAA,i=4000000000", "iterations"),
            ("r=abc1,s=!!,i=4096", "base64"),
            ("garbage", "malformed"),
            ("r=abc1,i=4096", "s="),
        ] {
            let mut s = Scram::with_nonce(Hash::Sha512, "u", Secret::new("p"), "abc".to_owned());
            let _ = s.step(None);
            let out = send(s.step(Some(server_first.as_bytes())));
            assert!(
                out.starts_with("error") && out.contains(why),
                "{server_first}: {out}"
            );
        }
    }

    #[test]
    fn usernames_are_escaped() {
        assert_eq!(escape("a=b,c"), "a=3Db=2Cc");
    }
}
